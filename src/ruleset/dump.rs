//! `iptables-save` text -> tables of chains of rule lines. Used to read the live state.

use std::borrow::Cow;
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
    for line in logical_lines(text) {
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

/// Options whose value `iptables-save` prints with `xtables_save_string`: in double quotes
/// (unless it is a plain word) with `"` and `\\` escaped. Other string values (`-m recent
/// --name`, `--hashlimit-name`, set names) are printed raw, so a `"` in them opens nothing.
const QUOTED_OPTIONS: &[&str] = &[
    "--comment",
    "--log-prefix",
    "--nflog-prefix",
    "--string",
    "--helper",
    "--led-trigger-id",
    "--path",
];

/// The lines of a save, with a quoted value that holds a newline joined back into its rule.
/// `iptables -m comment --comment "$(printf 'a\nb')"` is accepted and `iptables-save` prints
/// the newline raw; read line by line, the text after it would count as a rule, a chain
/// declaration or a COMMIT of its own (and could look exactly like pfstate's jump).
fn logical_lines(text: &str) -> Vec<Cow<'_, str>> {
    let mut out: Vec<Cow<'_, str>> = Vec::new();
    let mut open: Option<String> = None;
    for line in text.lines() {
        let open_before = open.is_some();
        let joined = match open.take() {
            Some(mut head) => {
                head.push('\n');
                head.push_str(line);
                Cow::Owned(head)
            }
            None => Cow::Borrowed(line),
        };
        if ends_quoted(line, open_before) {
            open = Some(joined.into_owned());
        } else {
            out.push(joined);
        }
    }
    out.extend(open.map(Cow::Owned));
    out
}

/// Whether a line ends inside the quoted value of one of [`QUOTED_OPTIONS`], given whether it
/// starts inside one (line by line, so a quote that never closes costs linear time).
fn ends_quoted(line: &str, starts_open: bool) -> bool {
    if !starts_open && !line.contains('"') {
        return false;
    }
    let (mut open, mut escaped) = (starts_open, false);
    let mut word_start: Option<usize> = None;
    let mut previous = "";
    for (i, c) in line.char_indices() {
        if open {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => open = false,
                _ => {}
            }
        } else if c.is_whitespace() {
            if let Some(w) = word_start.take() {
                previous = &line[w..i];
            }
        } else if c == '"' && word_start.is_none() && QUOTED_OPTIONS.contains(&previous) {
            open = true;
            previous = "";
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    open
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
/// `-j PFSTATE-X` is not mistaken for one of pfstate's jumps (and deleted). A rule with two
/// targets has none: `iptables-save` prints one target per rule, so the other came from a
/// value it prints unquoted (`-m recent --name "x -j PFSTATE-INPUT"`), and which is the real
/// one cannot be told from the text.
pub fn target(rule: &str) -> Option<&str> {
    let w = words(rule);
    let verb =
        |i: &usize| (w[*i] == "-j" || w[*i] == "-g") && (*i == 0 || w[*i - 1] != "--comment");
    let mut found = (0..w.len().saturating_sub(1))
        .filter(verb)
        .map(|i| w[i + 1]);
    match (found.next(), found.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
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
    fn a_newline_in_a_quoted_string_stays_in_its_rule() {
        let text = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment \"x\n-A INPUT -m comment --comment pfstate -j PFSTATE-INPUT\" -j ACCEPT\n-A INPUT -m comment --comment \"a \\\" b\\\\\" -j DROP\nCOMMIT\n*nat\n-A PREROUTING -m comment --comment \"y\nCOMMIT\n*filter\" -j RETURN\nCOMMIT\n";
        let s = parse(text);
        let input = &s.table("filter").unwrap().chain("INPUT").unwrap().rules;
        assert_eq!(input.len(), 2, "{input:?}");
        assert!(input[0].contains("x\n-A INPUT"), "{input:?}");
        assert_eq!(target(&input[0]), Some("ACCEPT"));
        assert_eq!(target(&input[1]), Some("DROP"));
        let nat = s.table("nat").unwrap();
        assert_eq!(nat.chain("PREROUTING").unwrap().rules.len(), 1);
        assert_eq!(s.tables.len(), 2, "{:?}", s.tables.keys());
    }

    #[test]
    fn a_raw_quote_in_a_name_opens_nothing() {
        let text = "*filter\n-A INPUT -m recent --set --name \"y --mask 255.255.255.255 --rsource\n-A INPUT -m hashlimit --hashlimit-name a\"b -j ACCEPT\n-A INPUT -m comment --comment pfstate -j PFSTATE-INPUT\nCOMMIT\n";
        let s = parse(text);
        let input = &s.table("filter").unwrap().chain("INPUT").unwrap().rules;
        assert_eq!(input.len(), 3, "{input:?}");
        assert_eq!(target(&input[2]), Some("PFSTATE-INPUT"));
    }

    #[test]
    fn a_rule_with_two_targets_has_none() {
        assert_eq!(
            target(
                "-A INPUT -m recent --rcheck --name x -j PFSTATE-INPUT --mask 255.255.255.255 --rsource -j DROP"
            ),
            None
        );
        assert_eq!(
            target("-A FORWARD -m hashlimit --hashlimit-name y -g PFSTATE-FORWARD -j ACCEPT"),
            None
        );
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
