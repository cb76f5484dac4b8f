//! `iptables-save` text -> tables of chains of rule lines. Used to read the live state.

use std::collections::BTreeMap;

use super::words::{split_rule, words};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedChain {
    /// `ACCEPT`/`DROP` for built-in chains, `-` for user chains.
    pub policy: String,
    /// `-A CHAIN ...` lines in kernel order, without counters.
    pub rules: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedTable {
    /// Chains in the order `iptables-save` declared them.
    pub order: Vec<String>,
    pub chains: BTreeMap<String, SavedChain>,
}

impl SavedTable {
    pub fn chain(&self, name: &str) -> Option<&SavedChain> {
        self.chains.get(name)
    }
}

/// A whole save: table name -> table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    pub tables: BTreeMap<String, SavedTable>,
}

impl Saved {
    pub fn table(&self, name: &str) -> Option<&SavedTable> {
        self.tables.get(name)
    }
}

/// Parse `iptables-save` output (with or without `-c` counters; counters are dropped).
pub fn parse(text: &str) -> Saved {
    let mut saved = Saved::default();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix('*') {
            current = Some(name.to_string());
            saved.tables.entry(name.to_string()).or_default();
            continue;
        }
        let Some(table) = current.as_ref().and_then(|t| saved.tables.get_mut(t)) else {
            continue;
        };
        if let Some(decl) = line.strip_prefix(':') {
            let mut parts = decl.split_whitespace();
            if let Some(name) = parts.next() {
                let policy = parts.next().unwrap_or("-").to_string();
                if !table.chains.contains_key(name) {
                    table.order.push(name.to_string());
                }
                table.chains.entry(name.to_string()).or_default().policy = policy;
            }
        } else if line.starts_with("-A ") || line.starts_with('[') {
            let rule = strip_counters(line);
            let chain = split_rule(rule).map_or("", |(c, _)| c);
            // Chains are declared before their rules: look up without allocating a name.
            match table.chains.get_mut(chain) {
                Some(c) => c.rules.push(rule.to_string()),
                None => {
                    table.order.push(chain.to_string());
                    table
                        .chains
                        .entry(chain.to_string())
                        .or_default()
                        .rules
                        .push(rule.to_string());
                }
            }
        } else if line == "COMMIT" {
            current = None;
        }
    }
    saved
}

/// `[12:3456] -A ...` -> `-A ...`.
pub fn strip_counters(line: &str) -> &str {
    if line.starts_with('[')
        && let Some(end) = line.find("] ")
    {
        return &line[end + 2..];
    }
    line
}

/// The counters of a `-c` save line, if present: (packets, bytes).
pub fn counters(line: &str) -> Option<(u64, u64)> {
    let inner = line.strip_prefix('[')?.split(']').next()?;
    let (p, b) = inner.split_once(':')?;
    Some((p.parse().ok()?, b.parse().ok()?))
}

/// The jump target of a rule line (`-j X` or `-g X`), if any. Words inside `"quoted"` strings
/// and the value of `--comment` never count, so a foreign rule whose comment mentions
/// `-j PFSTATE-X` is not mistaken for one of pfstate's jumps (and deleted).
pub fn target(rule: &str) -> Option<&str> {
    let w = words(rule);
    let verb =
        |i: &usize| (w[*i] == "-j" || w[*i] == "-g") && (*i == 0 || w[*i - 1] != "--comment");
    (0..w.len().saturating_sub(1)).find(verb).map(|i| w[i + 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tables_chains_and_counters() {
        let text = "# Generated\n*nat\n:PREROUTING ACCEPT [3:180]\n:X - [0:0]\n[1:60] -A PREROUTING -j X\n-A X -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.1:80\nCOMMIT\n*filter\n:FORWARD DROP [0:0]\nCOMMIT\n";
        let s = parse(text);
        let nat = s.table("nat").unwrap();
        assert_eq!(nat.order, vec!["PREROUTING", "X"]);
        assert_eq!(
            nat.chain("PREROUTING").unwrap().rules,
            vec!["-A PREROUTING -j X"]
        );
        assert_eq!(nat.chain("PREROUTING").unwrap().policy, "ACCEPT");
        assert_eq!(
            s.table("filter").unwrap().chain("FORWARD").unwrap().policy,
            "DROP"
        );
        assert_eq!(target("-A PREROUTING -j X"), Some("X"));
        assert_eq!(counters("[1:60] -A PREROUTING -j X"), Some((1, 60)));
    }

    #[test]
    fn comments_never_count_as_targets() {
        assert_eq!(
            target("-A INPUT -m comment --comment \"see -j PFSTATE-INPUT\" -j ACCEPT"),
            Some("ACCEPT")
        );
        assert_eq!(
            target("-A INPUT -m comment --comment \"a \\\" -j PFSTATE-X\" -j DROP"),
            Some("DROP")
        );
        assert_eq!(
            target("-A INPUT -m comment --comment -j -j RETURN"),
            Some("RETURN")
        );
        assert_eq!(target("-A INPUT -m comment --comment \"cali:x\""), None);
        assert_eq!(target("-A FORWARD -g PFSTATE-FWD"), Some("PFSTATE-FWD"));
    }
}
