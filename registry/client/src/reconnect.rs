//! The reconnecting NDJSON stream behind watches, service subscriptions and
//! config watches.
//!
//! It opens the stream on any endpoint, reads it line by line, and on
//! transport errors, silence or a retryable error message reconnects (with
//! bounded backoff and attempts) where the [`Feed`] says it left off. Each
//! API only says how to open its stream and what a message means.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use muster_types::Revision;
use muster_types::error::ErrorCode;
use muster_types::headers;
use serde::de::DeserializeOwned;

use crate::ndjson::LineDecoder;
use crate::{Call, Client, ClientError, Reply, Result};

/// What a failure means for a stream.
pub(crate) enum Failure {
    /// Reconnect (after a pause); `avoid` the endpoint that failed.
    Retry { error: ClientError, avoid: bool },
    /// Hand the error to the consumer and end.
    Fatal(ClientError),
}

/// One API's side of a reconnecting stream.
pub(crate) trait Feed: Send + 'static {
    /// One line of the stream.
    type Message: DeserializeOwned;
    type Item: Send + 'static;
    /// Names the stream in errors and logs ("watch", "subscription", ...).
    const NAME: &'static str;

    /// The request that opens the stream where it left off.
    fn open(&self) -> Call;
    /// The stream opened; `started_at` is the revision it starts after.
    fn opened(&mut self, started_at: Option<Revision>);
    /// One message: what the consumer gets goes to `ready`; an error ends
    /// this connection.
    fn message(
        &mut self,
        message: Self::Message,
        ready: &mut VecDeque<Result<Self::Item>>,
    ) -> std::result::Result<(), Failure>;
}

/// Streams a feed until it ends with an error it cannot recover from.
pub(crate) fn stream<F: Feed>(client: Client, feed: F) -> BoxStream<'static, Result<F::Item>> {
    let state = Reconnecting {
        client,
        feed,
        conn: None,
        ready: VecDeque::new(),
        failures: 0,
        done: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    })
    .boxed()
}

struct Conn {
    endpoint: String,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    lines: LineDecoder,
}

struct Reconnecting<F: Feed> {
    client: Client,
    feed: F,
    conn: Option<Conn>,
    ready: VecDeque<Result<F::Item>>,
    /// Consecutive failures since the last message.
    failures: u32,
    done: bool,
}

impl<F: Feed> Reconnecting<F> {
    async fn next(&mut self) -> Option<Result<F::Item>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            let failure = match self.conn.as_mut() {
                None => match self.connect().await {
                    Ok(conn) => {
                        self.conn = Some(conn);
                        continue;
                    }
                    Err(failure) => failure,
                },
                Some(conn) => {
                    let idle = self.client.inner.watch_idle_timeout;
                    match tokio::time::timeout(idle, conn.body.next()).await {
                        Err(_) => Failure::Retry {
                            error: ClientError::timeout(
                                &conn.endpoint,
                                &format!("waiting for {} messages", F::NAME),
                            ),
                            avoid: true,
                        },
                        Ok(None) => Failure::Retry {
                            error: ClientError::Transport {
                                endpoint: conn.endpoint.clone(),
                                kind: crate::TransportKind::Other,
                                message: format!("the {} stream ended", F::NAME),
                            },
                            avoid: false,
                        },
                        Ok(Some(Err(err))) => Failure::Retry {
                            error: ClientError::transport(&conn.endpoint, &err),
                            avoid: false,
                        },
                        Ok(Some(Ok(chunk))) => match self.take_chunk(&chunk) {
                            Ok(()) => continue,
                            Err(failure) => failure,
                        },
                    }
                }
            };
            self.fail(failure).await;
        }
    }

    async fn connect(&mut self) -> std::result::Result<Conn, Failure> {
        let answer = self
            .client
            .execute(&self.feed.open(), true)
            .await
            .map_err(classify_open_error)?;
        let Reply::Stream(response) = answer.reply else {
            unreachable!("stream call");
        };
        let started_at = response
            .headers()
            .get(headers::REVISION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        self.feed.opened(started_at);
        tracing::debug!(endpoint = %answer.endpoint, stream = F::NAME, "stream open");
        Ok(Conn {
            endpoint: answer.endpoint,
            body: response.bytes_stream().boxed(),
            lines: LineDecoder::new(),
        })
    }

    /// Decodes a chunk's complete lines and hands them to the feed.
    fn take_chunk(&mut self, chunk: &[u8]) -> std::result::Result<(), Failure> {
        let conn = self.conn.as_mut().expect("reading a connection");
        let endpoint = conn.endpoint.clone();
        let decode = |message: String| {
            Failure::Fatal(ClientError::Decode {
                endpoint: endpoint.clone(),
                message,
            })
        };
        let lines = conn.lines.push(chunk).map_err(|e| decode(e.to_string()))?;
        for line in lines {
            let message: F::Message = serde_json::from_slice(&line).map_err(|err| {
                decode(format!(
                    "bad {} message {:?}: {err}",
                    F::NAME,
                    crate::error::truncate(&String::from_utf8_lossy(&line), 120)
                ))
            })?;
            self.failures = 0;
            self.feed.message(message, &mut self.ready)?;
        }
        Ok(())
    }

    async fn fail(&mut self, failure: Failure) {
        if let Some(conn) = self.conn.take()
            && let Failure::Retry { avoid: true, .. } = failure
        {
            self.client.avoid(&conn.endpoint);
        }
        match failure {
            Failure::Fatal(error) => {
                self.ready.push_back(Err(error));
                self.done = true;
            }
            Failure::Retry { error, .. } => {
                self.failures += 1;
                if self.failures > self.client.inner.watch_retries {
                    self.ready.push_back(Err(error));
                    self.done = true;
                    return;
                }
                tracing::debug!(error = %error, attempt = self.failures, stream = F::NAME, "reconnecting");
                tokio::time::sleep(backoff(self.failures)).await;
            }
        }
    }
}

/// An error opening a stream: the ones another attempt may cure are retried.
fn classify_open_error(error: ClientError) -> Failure {
    let retry = match &error {
        ClientError::Transport { .. } => true,
        ClientError::Api { body, .. } => matches!(
            body.error,
            ErrorCode::Unavailable | ErrorCode::NotLeader | ErrorCode::TooManyWatchers
        ),
        _ => false,
    };
    if retry {
        Failure::Retry {
            error,
            avoid: false,
        }
    } else {
        Failure::Fatal(error)
    }
}

/// 100 ms doubling per consecutive failure, at most 2 s.
fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(5);
    Duration::from_millis(100 << exp).min(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(5), Duration::from_millis(1600));
        assert_eq!(backoff(6), Duration::from_secs(2));
        assert_eq!(backoff(30), Duration::from_secs(2));
        assert_eq!(backoff(40), Duration::from_secs(2));
    }
}
