//! firewalld's permanent zone configuration, read from its XML files: which zone an interface is
//! in, what the zone lets in (its target, ports and services) and whether it forwards.
//!
//! `/etc/firewalld/zones/NAME.xml` overrides `/usr/lib/firewalld/zones/NAME.xml`; services
//! likewise. The shipped zones are read, and the default zone. Runtime-only changes (`firewall-cmd` without `--permanent`, NetworkManager's zone
//! bindings) are not in the files and are not seen. The files are small and regular, so a tag
//! scanner reads them; nothing else of XML is needed.

use std::collections::BTreeMap;

const DIRS: [&str; 2] = ["/usr/lib/firewalld", "/etc/firewalld"];

/// (protocol, first port, last port).
pub type PortSpan = (String, u16, u16);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    /// `default`, `ACCEPT`, `REJECT`, `DROP` or `%%REJECT%%`.
    pub target: String,
    /// (protocol, first port, last port) the zone lets in, services resolved.
    pub ports: Vec<PortSpan>,
    pub forward: bool,
    pub masquerade: bool,
    pub interfaces: Vec<String>,
}

impl Zone {
    pub fn accepts_everything(&self) -> bool {
        self.target == "ACCEPT"
    }
    pub fn forwards(&self) -> bool {
        self.forward || self.masquerade
    }
    /// Whether every port of `lo..=hi` is open for `proto`.
    pub fn allows(&self, proto: &str, lo: u16, hi: u16) -> bool {
        (lo..=hi).all(|p| {
            self.ports
                .iter()
                .any(|(pr, a, b)| pr == proto && *a <= p && p <= *b)
        })
    }
}

/// The tags of an XML text: name and attributes, in order.
fn tags(xml: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out = Vec::new();
    for piece in xml.split('<').skip(1) {
        let Some((inside, _)) = piece.split_once('>') else {
            continue;
        };
        let inside = inside.trim_end_matches('/').trim();
        if inside.starts_with(['?', '!', '/']) {
            continue;
        }
        let (name, mut rest) = inside
            .split_once(char::is_whitespace)
            .unwrap_or((inside, ""));
        let mut attrs = BTreeMap::new();
        while let Some((key, after)) = rest.split_once('=') {
            let after = after.trim_start();
            let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                break;
            };
            let Some((value, tail)) = after[1..].split_once(quote) else {
                break;
            };
            attrs.insert(key.trim().to_string(), value.to_string());
            rest = tail;
        }
        out.push((name.to_string(), attrs));
    }
    out
}

fn port_range(text: &str) -> Option<(u16, u16)> {
    match text.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => text.trim().parse().ok().map(|p| (p, p)),
    }
}

/// The ports a service XML opens.
pub fn service_ports(xml: &str) -> Vec<PortSpan> {
    tags(xml)
        .into_iter()
        .filter(|(n, _)| n == "port")
        .filter_map(|(_, a)| {
            let (lo, hi) = port_range(a.get("port")?)?;
            Some((a.get("protocol")?.clone(), lo, hi))
        })
        .collect()
}

/// A zone from its XML; `service` resolves a service name to its ports.
pub fn parse_zone(name: &str, xml: &str, service: &dyn Fn(&str) -> Vec<PortSpan>) -> Zone {
    let mut z = Zone {
        name: name.to_string(),
        target: "default".into(),
        ..Zone::default()
    };
    for (tag, a) in tags(xml) {
        match tag.as_str() {
            "zone" => {
                if let Some(t) = a.get("target") {
                    z.target = t.clone();
                }
            }
            "service" => z
                .ports
                .extend(a.get("name").map(|s| service(s)).unwrap_or_default()),
            "port" => z.ports.extend(service_ports(&format!(
                "<port port=\"{}\" protocol=\"{}\"/>",
                a.get("port").map_or("", String::as_str),
                a.get("protocol").map_or("", String::as_str)
            ))),
            "forward" => z.forward = true,
            "masquerade" => z.masquerade = true,
            "interface" => z.interfaces.extend(a.get("name").cloned()),
            _ => {}
        }
    }
    z
}

/// Every zone of the host, and which is the default.
#[derive(Debug, Default)]
pub struct Zones {
    pub zones: Vec<Zone>,
    pub default: Option<String>,
}

/// The zones firewalld ships; a custom zone is read only when it is the default one.
const STANDARD_ZONES: [&str; 9] = [
    "block", "dmz", "drop", "external", "home", "internal", "public", "trusted", "work",
];

/// A zone or service file: the one under /etc/firewalld overrides the shipped one.
fn read_xml(read: &dyn Fn(&str) -> Option<String>, kind: &str, name: &str) -> Option<String> {
    DIRS.iter()
        .rev()
        .find_map(|d| read(&format!("{d}/{kind}/{name}.xml")))
}

impl Zones {
    /// Read firewalld's configuration through `read` (a path on the target system to its
    /// content, `None` when absent).
    pub fn read(read: &dyn Fn(&str) -> Option<String>) -> Zones {
        let conf = read("/etc/firewalld/firewalld.conf").unwrap_or_default();
        let default = conf
            .lines()
            .find_map(|l| l.trim().strip_prefix("DefaultZone="))
            .map(|z| z.trim().to_string())
            .or_else(|| Some("public".into()));
        let mut names: Vec<String> = STANDARD_ZONES.iter().map(|z| z.to_string()).collect();
        if let Some(d) = &default
            && !names.contains(d)
        {
            names.push(d.clone());
        }
        let service = |s: &str| service_ports(&read_xml(read, "services", s).unwrap_or_default());
        let zones = names
            .iter()
            .filter_map(|n| Some(parse_zone(n, &read_xml(read, "zones", n)?, &service)))
            .collect();
        Zones { zones, default }
    }

    /// The zone an interface is in: the one binding it, else the default zone.
    pub fn zone_of(&self, iface: Option<&str>) -> Option<&Zone> {
        iface
            .and_then(|i| {
                self.zones
                    .iter()
                    .find(|z| z.interfaces.iter().any(|x| x == i))
            })
            .or_else(|| {
                let d = self.default.as_deref()?;
                self.zones.iter().find(|z| z.name == d)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<zone>
  <short>Public</short>
  <description>For use in public areas.</description>
  <service name="ssh"/>
  <service name="dhcpv6-client"/>
  <port port="8000-8010" protocol="tcp"/>
  <forward/>
</zone>"#;

    fn services(name: &str) -> Vec<PortSpan> {
        match name {
            "ssh" => service_ports(r#"<service><port protocol="tcp" port="22"/></service>"#),
            _ => vec![],
        }
    }

    #[test]
    fn a_zone_and_its_services() {
        let z = parse_zone("public", PUBLIC, &services);
        assert_eq!(z.target, "default");
        assert!(z.allows("tcp", 22, 22));
        assert!(z.allows("tcp", 8001, 8010));
        assert!(!z.allows("tcp", 8010, 8011));
        assert!(!z.allows("udp", 22, 22));
        assert!(z.forward && !z.masquerade && z.forwards());
        let trusted = parse_zone(
            "trusted",
            "<zone target='ACCEPT'><interface name=\"lan0\"/></zone>",
            &services,
        );
        assert!(trusted.accepts_everything());
        assert_eq!(trusted.interfaces, ["lan0"]);
    }

    #[test]
    fn interfaces_fall_back_to_the_default_zone() {
        let zones = Zones {
            zones: vec![
                parse_zone("public", PUBLIC, &services),
                parse_zone(
                    "internal",
                    "<zone><interface name='lan0'/><masquerade/></zone>",
                    &services,
                ),
            ],
            default: Some("public".into()),
        };
        assert_eq!(zones.zone_of(Some("lan0")).unwrap().name, "internal");
        assert_eq!(zones.zone_of(Some("wan0")).unwrap().name, "public");
        assert_eq!(zones.zone_of(None).unwrap().name, "public");
    }

    #[test]
    fn the_installed_zones_are_read() {
        let z = Zones::read(&|p: &str| std::fs::read_to_string(p).ok());
        // Wherever firewalld is installed its public zone lets ssh in.
        if let Some(public) = z.zones.iter().find(|z| z.name == "public") {
            assert!(public.allows("tcp", 22, 22), "{public:?}");
        }
    }
}
