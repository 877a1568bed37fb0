//! `muster member`: cluster membership.

use clap::Subcommand;
use muster_types::cluster::{AddMemberRequest, Member, MemberList, MemberRole};

use crate::Ctx;
use crate::output::{Format, Table, or_dash, print_json};

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// List the members.
    List,
    /// Add a node (as a learner) that listens for Raft traffic on PEER_URL.
    Add {
        name: String,
        peer_url: String,
        #[arg(long)]
        client_url: Option<String>,
        /// Refuse unless the membership id is still this (see `member list`).
        #[arg(long)]
        expect_membership: Option<u64>,
        /// The node takes the place of the member of the same name (its
        /// data was lost); promoting it removes the old one.
        #[arg(long)]
        replace: bool,
    },
    /// Make a learner a voter (replacing its namesake, if it was added with --replace).
    Promote {
        name: String,
        #[arg(long)]
        expect_membership: Option<u64>,
    },
    /// Remove a member.
    Remove {
        name: String,
        #[arg(long)]
        expect_membership: Option<u64>,
    },
    /// Hand leadership to a member.
    TransferLeader { name: String },
}

impl MemberCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<()> {
        let list = match self {
            MemberCommand::List => ctx.client.members().await?,
            MemberCommand::Add {
                name,
                peer_url,
                client_url,
                expect_membership,
                replace,
            } => {
                let request = AddMemberRequest {
                    name,
                    peer_url,
                    client_url,
                    expect_membership,
                    replace,
                };
                let member = ctx.client.add_member(&request).await?;
                return match ctx.format {
                    Format::Json => print_json(&member),
                    Format::Table => {
                        member_table(std::slice::from_ref(&member)).print();
                        Ok(())
                    }
                };
            }
            MemberCommand::Promote {
                name,
                expect_membership,
            } => ctx.client.promote_member(&name, expect_membership).await?,
            MemberCommand::Remove {
                name,
                expect_membership,
            } => ctx.client.remove_member(&name, expect_membership).await?,
            MemberCommand::TransferLeader { name } => ctx.client.transfer_leader(&name).await?,
        };
        print_list(ctx.format, &list)
    }
}

fn print_list(format: Format, list: &MemberList) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(list),
        Format::Table => {
            member_table(&list.members).print();
            // Needed for --expect-membership, so shown with every list.
            println!("membership id: {}", list.membership_id);
            Ok(())
        }
    }
}

fn member_table(members: &[Member]) -> Table {
    let mut table = Table::new(&[
        "NAME",
        "ID",
        "ROLE",
        "LEADER",
        "PEER URL",
        "CLIENT URL",
        "LAG",
    ]);
    for member in members {
        let role = match member.role {
            MemberRole::Voter => "voter",
            MemberRole::Learner => "learner",
        };
        table.row(vec![
            member.name.clone(),
            member.id.to_string(),
            role.to_string(),
            member.is_leader.to_string(),
            member.peer_url.clone(),
            member.client_url.clone(),
            or_dash(member.lag),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_rows() {
        let members = [
            Member {
                name: "a".into(),
                id: 11,
                peer_url: "http://a:7101".into(),
                client_url: "http://a:7001".into(),
                role: MemberRole::Voter,
                is_leader: true,
                lag: Some(0),
            },
            Member {
                name: "bb".into(),
                id: 12,
                peer_url: "http://bb:7101".into(),
                client_url: "http://bb:7001".into(),
                role: MemberRole::Learner,
                is_leader: false,
                lag: None,
            },
        ];
        assert_eq!(
            member_table(&members).render(),
            "NAME  ID  ROLE     LEADER  PEER URL        CLIENT URL      LAG\n\
             a     11  voter    true    http://a:7101   http://a:7001   0\n\
             bb    12  learner  false   http://bb:7101  http://bb:7001  -\n"
        );
    }
}
