//! firewalld's D-Bus announcements: `Reloaded` (end of `firewall-cmd --reload`) and the bus
//! name `org.fedoraproject.FirewallD1` changing owner (firewalld started or stopped).
//!
//! The nf_tables events already show firewalld's flushes on an iptables-nft host; the signal is
//! the only prompt on an iptables-legacy host, and tells the log *who* flushed. Listening blocks
//! on the bus socket (zbus's own runtime, no polling): idle it costs nothing.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;

use zbus::export::futures_core::Stream;
use zbus::message::Type;
use zbus::{MatchRule, MessageStream};

const NAME: &str = "org.fedoraproject.FirewallD1";

/// What firewalld announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcement {
    /// `firewall-cmd --reload` (or `systemctl reload firewalld`) finished.
    Reloaded,
    /// firewalld took its bus name: it starts and is about to flush.
    Started,
    /// firewalld released its bus name: it stopped (and flushed on the way out).
    Stopped,
}

/// Classify a `NameOwnerChanged(name, old, new)` for firewalld's name.
fn owner_change(name: &str, old: &str, new: &str) -> Option<Announcement> {
    if name != NAME {
        return None;
    }
    match (old.is_empty(), new.is_empty()) {
        (true, false) => Some(Announcement::Started),
        (false, true) => Some(Announcement::Stopped),
        _ => None,
    }
}

fn rules() -> zbus::Result<(MatchRule<'static>, MatchRule<'static>)> {
    let reloaded = MatchRule::builder()
        .msg_type(Type::Signal)
        .interface(NAME)
        .member("Reloaded")
        .build()?;
    let owner = MatchRule::builder()
        .msg_type(Type::Signal)
        .sender("org.freedesktop.DBus")
        .interface("org.freedesktop.DBus")
        .member("NameOwnerChanged")
        .arg(0, NAME)
        .build()?;
    Ok((reloaded, owner))
}

/// Connect to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` or the default socket), subscribe, and
/// call `on` for every announcement until it returns `false` or the bus goes away. An `Err` says
/// why listening could not start or stopped (no bus, bus closed).
pub fn listen(mut on: impl FnMut(Announcement) -> bool) -> Result<(), String> {
    zbus::block_on(async {
        let conn = zbus::conn::Builder::system().build().await?;
        let (reloaded, owner) = rules()?;
        let mut a = MessageStream::for_match_rule(reloaded, &conn, None).await?;
        let mut b = MessageStream::for_match_rule(owner, &conn, None).await?;
        loop {
            let msg = poll_fn(|cx| {
                for s in [&mut a, &mut b] {
                    if let Poll::Ready(m) = Pin::new(&mut *s).poll_next(cx) {
                        return Poll::Ready(m);
                    }
                }
                Poll::Pending
            })
            .await;
            let Some(msg) = msg else {
                return Err(zbus::Error::Failure("the system bus closed".into()));
            };
            let msg = msg?;
            let header = msg.header();
            let what = match header.member().map(|m| m.as_str()) {
                Some("Reloaded") => Some(Announcement::Reloaded),
                Some("NameOwnerChanged") => msg
                    .body()
                    .deserialize::<(String, String, String)>()
                    .ok()
                    .and_then(|(n, o, w)| owner_change(&n, &o, &w)),
                _ => None,
            };
            if let Some(what) = what
                && !on(what)
            {
                return Ok(());
            }
        }
    })
    .map_err(|e: zbus::Error| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_changes_of_firewalld_only() {
        assert_eq!(owner_change(NAME, "", ":1.7"), Some(Announcement::Started));
        assert_eq!(owner_change(NAME, ":1.7", ""), Some(Announcement::Stopped));
        assert_eq!(owner_change(NAME, ":1.7", ":1.9"), None);
        assert_eq!(owner_change("org.example", "", ":1.7"), None);
    }

    #[test]
    fn match_rules_are_valid() {
        let (reloaded, owner) = rules().unwrap();
        assert_eq!(
            reloaded.to_string(),
            "type='signal',interface='org.fedoraproject.FirewallD1',member='Reloaded'"
        );
        assert!(
            owner
                .to_string()
                .contains("arg0='org.fedoraproject.FirewallD1'")
        );
    }
}
