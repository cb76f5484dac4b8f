//! The list of nf_tables tables, read straight from the kernel over netlink.
//!
//! `nft list tables` fetches the whole rule set before printing the table names: at 10,000
//! forwards (20,000 iptables-nft rules) that is 0.6 s, more than everything else a plan does,
//! and it grows faster than linearly. One `NFT_MSG_GETTABLE` dump answers the same question
//! in microseconds. Read-only: the socket only sends a dump request.

use std::process::Command;

use crate::host::{NftTables, nfnetlink};

const NFT_MSG_GETTABLE: u16 = 1;
const NFTA_TABLE_NAME: u16 = 1;

/// `table FAMILY NAME` lines as `nft list tables` prints them, or `None` if the kernel could
/// not be asked (no nf_tables, no permission).
pub fn list_tables() -> Option<String> {
    let mut out = String::new();
    nfnetlink::query(NFT_MSG_GETTABLE, true, |family, attrs| {
        if let Some(raw) = nfnetlink::attr(attrs, NFTA_TABLE_NAME) {
            let raw = raw.split(|b| *b == 0).next().unwrap_or(raw);
            out.push_str(&format!(
                "table {} {}\n",
                family_name(family),
                String::from_utf8_lossy(raw)
            ));
        }
    })?;
    Some(out)
}

/// Over netlink, else with the `nft` tool.
pub struct NftList;

impl NftTables for NftList {
    /// `nft list tables`, or `None` when nft is not installed or fails. Asked over netlink
    /// first: the `nft` tool reads the whole rule set to list the tables (0.6 s at 10,000
    /// forwards).
    fn list(&self) -> Option<String> {
        if let Some(listing) = list_tables() {
            return Some(listing);
        }
        let out = Command::new("nft").args(["list", "tables"]).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }
}

fn family_name(family: u8) -> String {
    match family {
        1 => "inet".into(),
        2 => "ip".into(),
        3 => "arp".into(),
        5 => "netdev".into(),
        7 => "bridge".into(),
        10 => "ip6".into(),
        f => format!("family-{f}"),
    }
}
