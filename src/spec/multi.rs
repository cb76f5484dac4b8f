//! Several files make one state: `pfstate apply a.yaml b.yaml`, or a directory of `*.yaml` in
//! name order (a role's defaults beside a host's own entries, a conf.d of drop-ins).
//!
//! The files are parsed one by one (each error names its file), then joined into one state
//! before validation: lists (forwards, snat, filter) follow each other in file order, and the
//! validation sees them together, so names, ports and interface aliases are checked across
//! files. What may be said once (`host`, `prefix`, each interface alias and sysctl key) must be
//! said in one file only. The persisted copy of a state of several files is their join as JSON
//! (which is YAML), so the boot unit applies exactly what was checked.

use std::collections::HashMap;
use std::path::PathBuf;

use super::span::{Spanned, at};
use super::yaml::{self, Spec};
use crate::error::{Diagnostic, Error, Location, SpecError};
use crate::model::Model;

/// The files named on the command line, a directory standing for its `*.yaml` in name order.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for p in paths {
        if !p.is_dir() {
            out.push(p.clone());
            continue;
        }
        let entries = std::fs::read_dir(p).map_err(|e| Error::Read {
            path: p.display().to_string(),
            source: e,
        })?;
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|f| f.extension().is_some_and(|x| x == "yaml") && !f.is_dir())
            .collect();
        if found.is_empty() {
            return Err(Error::Usage(format!(
                "{}: a directory without *.yaml files",
                p.display()
            )));
        }
        found.sort();
        out.extend(found);
    }
    if out.len() > usize::from(u16::MAX) {
        return Err(Error::Usage("too many files for one state".into()));
    }
    Ok(out)
}

/// Read, parse and validate the files as one state; returns the model and the text to
/// persist (a single file verbatim, several joined).
pub fn load_all(paths: &[PathBuf]) -> Result<(Model, String), Error> {
    let files = expand(paths)?;
    if let [one] = files.as_slice() {
        return super::load(one);
    }
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let mut texts = Vec::new();
    let mut specs = Vec::new();
    let mut failed = Vec::new();
    for (i, (path, name)) in files.iter().zip(&names).enumerate() {
        let text = super::read(path)?;
        match yaml::parse_nth(i as u16, name, &text) {
            Ok(s) => specs.push(s),
            Err(e) => failed.push(Error::Spec(e)),
        }
        texts.push(text);
    }
    if !failed.is_empty() {
        return Err(Error::Files(failed));
    }
    let merged = merge(specs, &names).map_err(|diagnostics| spec_error(&names, diagnostics))?;
    let model = super::validate::check(&merged, &names)?;
    Ok((model, joined_text(&names, &texts)?))
}

fn spec_error(names: &[String], mut diagnostics: Vec<Diagnostic>) -> SpecError {
    diagnostics.sort_by_key(|d| d.location);
    SpecError {
        file: names[0].clone(),
        diagnostics,
        more_files: names[1..].to_vec(),
    }
}

/// Join parsed files into one state, or say what is defined twice.
fn merge(specs: Vec<Spec>, names: &[String]) -> Result<Spec, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut parts = specs.into_iter();
    let mut all = parts.next().expect("at least two files");
    for part in parts {
        if *part.version != *all.version {
            diags.push(diag(
                at(&part.version),
                format!(
                    "version {} differs from version {} of the first file",
                    *part.version, *all.version
                ),
            ));
        }
        once(&mut all.host, part.host, "host", names, &mut diags);
        once(&mut all.prefix, part.prefix, "prefix", names, &mut diags);
        all.interfaces.0.extend(part.interfaces.0);
        all.sysctl.0.extend(part.sysctl.0);
        all.forwards.extend(part.forwards);
        all.snat.extend(part.snat);
        all.filter.extend(part.filter);
    }
    unique_keys(&all.interfaces.0, "interface alias", names, &mut diags);
    unique_keys(&all.sysctl.0, "sysctl", names, &mut diags);
    if diags.is_empty() {
        Ok(all)
    } else {
        Err(diags)
    }
}

fn diag(location: Location, message: String) -> Diagnostic {
    Diagnostic { location, message }
}

/// `a.yaml:3`, for a message about another file.
fn place(names: &[String], l: Location) -> String {
    let name = names.get(usize::from(l.file)).map_or("?", String::as_str);
    format!("{name}:{}", l.line)
}

/// `host` and `prefix` are said in one file only.
fn once(
    have: &mut Option<Spanned<String>>,
    more: Option<Spanned<String>>,
    key: &str,
    names: &[String],
    diags: &mut Vec<Diagnostic>,
) {
    match (have.as_ref(), more) {
        (None, more) => *have = more,
        (Some(first), Some(again)) => diags.push(diag(
            at(&again),
            format!(
                "`{key}` is already set at {}; set it in one file only",
                place(names, first.location)
            ),
        )),
        (Some(_), None) => {}
    }
}

/// A key (interface alias, sysctl) defined in two files.
fn unique_keys<V>(
    items: &[(Spanned<String>, V)],
    what: &str,
    names: &[String],
    diags: &mut Vec<Diagnostic>,
) {
    let mut seen: HashMap<&str, Location> = HashMap::new();
    for (key, _) in items {
        match seen.get(key.value.as_str()) {
            Some(first) if first.file != key.location.file => diags.push(diag(
                at(key),
                format!(
                    "{what} `{}` is already defined at {}; define it in one file only",
                    key.value,
                    place(names, *first)
                ),
            )),
            Some(_) => {}
            None => {
                seen.insert(&key.value, key.location);
            }
        }
    }
}

/// The persisted copy of a state of several files: their join, as JSON (YAML reads JSON).
fn joined_text(names: &[String], texts: &[String]) -> Result<String, Error> {
    let mut joined = serde_json::Map::new();
    for (name, text) in names.iter().zip(texts) {
        let value: serde_json::Value =
            serde_saphyr::from_str_with_options(text, yaml::saphyr_options()).map_err(|e| {
                Error::Usage(format!("{name}: cannot be joined with the others: {e}"))
            })?;
        let serde_json::Value::Object(map) = value else {
            continue;
        };
        for (key, v) in map {
            match (joined.get_mut(&key), v) {
                (Some(serde_json::Value::Array(a)), serde_json::Value::Array(b)) => a.extend(b),
                (Some(serde_json::Value::Object(a)), serde_json::Value::Object(b)) => a.extend(b),
                (Some(_), _) => {}
                (None, v) => {
                    joined.insert(key, v);
                }
            }
        }
    }
    let body = serde_json::to_string_pretty(&serde_json::Value::Object(joined))
        .expect("a JSON value serializes");
    Ok(format!(
        "# pfstate: the state applied from {}, joined in this order (JSON is YAML)\n{body}\n",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    fn err_text(paths: &[PathBuf]) -> String {
        load_all(paths).expect_err("must fail").to_string()
    }

    const A: &str = "version: 1\ninterfaces: {lan: eth1}\nforwards:\n  - {name: web, listen: {port: 80}, to: 192.168.1.2, via: lan}\n";
    const B: &str = "version: 1\n# the host's own\nforwards:\n  - {name: ssh-box, listen: {port: 2222}, to: 192.168.1.3:22, via: lan}\nfilter:\n  - {name: ssh, chain: input, proto: tcp, dport: 22, action: accept}\n";

    #[test]
    fn files_join_in_order_and_the_joined_copy_reads_back_the_same() {
        let d = tempfile::tempdir().expect("tmp");
        let (a, b) = (write(d.path(), "a.yaml", A), write(d.path(), "b.yaml", B));
        let (model, text) = load_all(&[a, b]).expect("loads");
        let names: Vec<&str> = model.forwards.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["web", "ssh-box"]);
        assert_eq!(model.filters.len(), 1);
        assert!(
            text.starts_with("# pfstate: the state applied from "),
            "{text}"
        );
        let again = crate::spec::load_str("host.yaml", &text).expect("joined copy is valid");
        assert_eq!(format!("{again:?}"), format!("{model:?}"));
    }

    #[test]
    fn a_name_in_two_files_is_an_error_naming_both() {
        let d = tempfile::tempdir().expect("tmp");
        let a = write(d.path(), "a.yaml", A);
        let b = write(
            d.path(),
            "b.yaml",
            "version: 1\nforwards:\n  - {name: web, listen: {port: 81}, to: 10.0.0.9}\n",
        );
        let e = err_text(&[a.clone(), b.clone()]);
        let expected = format!(
            "{}:3:12: name `web` is already used at {}:4; names must be unique",
            b.display(),
            a.display()
        );
        assert_eq!(e, expected);
    }

    #[test]
    fn what_is_said_once_must_be_said_in_one_file() {
        let d = tempfile::tempdir().expect("tmp");
        let a = write(
            d.path(),
            "a.yaml",
            "version: 1\nprefix: EDGE\ninterfaces: {wan: eth0}\n",
        );
        let b = write(
            d.path(),
            "b.yaml",
            "version: 1\nprefix: EDGE\ninterfaces: {wan: eth9}\n",
        );
        let e = err_text(&[a.clone(), b.clone()]);
        let b = b.display();
        assert!(
            e.contains(&format!(
                "{b}:2:9: `prefix` is already set at {}:2",
                a.display()
            )),
            "{e}"
        );
        assert!(
            e.contains(&format!(
                "{b}:3:14: interface alias `wan` is already defined at"
            )),
            "{e}"
        );
    }

    #[test]
    fn parse_errors_of_every_file_are_reported_with_their_file() {
        let d = tempfile::tempdir().expect("tmp");
        let a = write(d.path(), "a.yaml", "version: 1\nforwards: [\n");
        let b = write(d.path(), "b.yaml", "version: 1\nfowards: []\n");
        let e = err_text(&[a.clone(), b.clone()]);
        assert!(e.contains(&format!("{}:", a.display())), "{e}");
        assert!(e.contains(&format!("{}:2:1:", b.display())), "{e}");
    }

    #[test]
    fn validation_errors_point_into_the_right_file() {
        let d = tempfile::tempdir().expect("tmp");
        let a = write(d.path(), "a.yaml", A);
        let b = write(
            d.path(),
            "b.yaml",
            "version: 1\n\nforwards:\n  - {name: bad, listen: {port: 70000}, to: 10.0.0.9}\n",
        );
        let e = err_text(&[a, b.clone()]);
        assert!(e.starts_with(&format!("{}:4:", b.display())), "{e}");
    }

    #[test]
    fn a_directory_is_its_yaml_files_in_name_order() {
        let d = tempfile::tempdir().expect("tmp");
        write(d.path(), "20-host.yaml", B);
        write(d.path(), "10-role.yaml", A);
        write(d.path(), "README", "not a state");
        std::fs::create_dir(d.path().join("sub.yaml")).expect("dir");
        let files = expand(&[d.path().to_path_buf()]).expect("expands");
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["10-role.yaml", "20-host.yaml"]);
        let (model, _) = load_all(&[d.path().to_path_buf()]).expect("loads");
        assert_eq!(model.forwards[0].name, "web");
        let empty = tempfile::tempdir().expect("tmp");
        let e = err_text(&[empty.path().to_path_buf()]);
        assert!(e.contains("a directory without *.yaml files"), "{e}");
    }
}
