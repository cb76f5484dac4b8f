//! One short function per command, chaining the stages. The exit-code contract lives in
//! `main.rs`; here each command says whether something changed (or would change).

use std::io::IsTerminal;
use std::path::Path;

use crate::cli::{Cli, Cmd, ColorChoice, Format};
use crate::converge::{self, Host, Observed, Plan};
use crate::diff;
use crate::error::{Error, HostError};
use crate::files::{self, FileJournal, ManagedFile};
use crate::host::ServiceManager;
use crate::iptables::Iptables;
use crate::model::{Family, Model};
use crate::names;
use crate::persist::{self, Root};
use crate::plan::FamilyPlan;
use crate::render::{self, Desired};
use crate::resolve::SystemResolver;
use crate::sysctl::ProcSys;
use crate::systemd::{DbusServiceManager, OfflineServiceManager};
use crate::unit::{STATE_PATH, UNIT_NAME};
use crate::validate;

/// What a command reports: whether the host differs (or changed), and text to print.
#[derive(Debug, Default)]
pub struct Outcome {
    pub changed: bool,
    /// The diff (plan/diff/apply) or other main output.
    pub diff: String,
    /// Short lines for a person: summaries, "in sync".
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
    /// `plan`, `apply --dry-run` and `diff` exit 2 when `changed`.
    pub changes_exit_2: bool,
}

pub struct Ctx {
    pub root: Root,
    pub color: bool,
    pub format: Format,
}

impl Ctx {
    pub fn new(cli: &Cli) -> Ctx {
        let color = match cli.global.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
            }
        } && cli.global.format == Format::Text;
        let root = cli
            .global
            .root
            .as_ref()
            .map(Root::under)
            .unwrap_or_else(Root::live);
        Ctx {
            root,
            color,
            format: cli.global.format,
        }
    }
}

pub fn run(cli: &Cli, ctx: &Ctx) -> Result<Outcome, Error> {
    match &cli.command {
        Cmd::Validate { files } => validate_files(files),
        Cmd::Render { file } => render_file(file),
        Cmd::Diff { old, new } => diff_files(old, new),
        Cmd::Plan { file } => plan_file(ctx, file),
        Cmd::Apply {
            file,
            dry_run: true,
            ..
        } => plan_file(ctx, file),
        Cmd::Apply { file, boot, .. } => apply_file(ctx, file, *boot),
        Cmd::Status { file } => crate::status::status(ctx, file.as_deref()),
        Cmd::Remove { prefix } => remove(ctx, prefix.as_deref()),
        Cmd::Try { file } => crate::try_run::try_file(ctx, file),
    }
}

/// Read and validate a file.
pub fn load(path: &Path) -> Result<(Model, String), Error> {
    let name = path.display().to_string();
    let text = read_text(path)?;
    let model = validate::load_str(&name, &text)?;
    Ok((model, text))
}

fn read_text(path: &Path) -> Result<String, Error> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Read {
        path: path.display().to_string(),
        source: e,
    })?;
    if meta.len() > crate::spec::MAX_FILE_BYTES as u64 {
        return Err(Error::Usage(format!(
            "{}: larger than {} MiB",
            path.display(),
            crate::spec::MAX_FILE_BYTES >> 20
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::Read {
        path: path.display().to_string(),
        source: e,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        // Point at the first byte that is not UTF-8, like any other spec error.
        let valid =
            String::from_utf8_lossy(&e.as_bytes()[..e.utf8_error().valid_up_to()]).to_string();
        let line = valid.matches('\n').count() as u64 + 1;
        let col = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
        let loc = crate::error::Location::new(line, col);
        Error::Spec(crate::error::SpecError::one(
            &path.display().to_string(),
            loc,
            "the file is not UTF-8 text",
        ))
    })
}

fn validate_files(paths: &[std::path::PathBuf]) -> Result<Outcome, Error> {
    let mut errors = Vec::new();
    let mut out = Outcome::default();
    for p in paths {
        match load(p) {
            Ok(_) => out.notes.push(format!("{}: ok", p.display())),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Error::Usage(errors.join("\n")))
    }
}

/// The full text `render` prints for a state: what apply would install on an empty host.
pub fn render_text(model: &Model, source: &str) -> Result<String, Error> {
    let desired = render::render(model, &SystemResolver);
    let mut out = String::new();
    for rs in &desired.rulesets {
        let plan = crate::plan::plan_family(&desired.prefix, rs, &Default::default());
        let tool = match rs.family {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        };
        if !plan.is_empty() {
            out.push_str(&format!(
                "# {}: {tool} --noflush\n{}",
                rs.family,
                plan.payload()
            ));
        }
    }
    for f in files::desired_files(model, &desired, source)? {
        if let Some(c) = f.content.filter(|_| f.target != STATE_PATH) {
            out.push_str(&format!("# {}\n{c}", f.target));
            if !c.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    for w in &desired.warnings {
        out.push_str(&format!("# warning: {w}\n"));
    }
    Ok(out)
}

fn render_file(path: &Path) -> Result<Outcome, Error> {
    let (model, source) = load(path)?;
    Ok(Outcome {
        diff: render_text(&model, &source)?,
        ..Outcome::default()
    })
}

fn diff_files(old: &Path, new: &Path) -> Result<Outcome, Error> {
    let (m_old, s_old) = load(old)?;
    let (m_new, s_new) = load(new)?;
    let a = render_text(&m_old, &s_old)?;
    let b = render_text(&m_new, &s_new)?;
    let d = diff::unified(
        &a,
        &b,
        &old.display().to_string(),
        &new.display().to_string(),
    );
    Ok(Outcome {
        changed: !d.is_empty(),
        diff: d,
        changes_exit_2: true,
        ..Outcome::default()
    })
}

/// Everything a plan or apply needs, computed once.
struct Prepared {
    model: Model,
    desired: Desired,
    observed: Observed,
    plan: Plan,
    files: Vec<ManagedFile>,
    unit_enabled: Option<bool>,
}

fn service_manager(root: &Root) -> Result<Box<dyn ServiceManager>, HostError> {
    match &root.dir {
        Some(dir) => Ok(Box::new(OfflineServiceManager::new(dir.clone()))),
        None => Ok(Box::new(DbusServiceManager::system()?)),
    }
}

fn prepare(
    ctx: &Ctx,
    host: &Host,
    model: Model,
    source: &str,
    files_wanted: Option<Vec<ManagedFile>>,
    query_unit: bool,
) -> Result<Prepared, Error> {
    let desired = render::render(&model, &SystemResolver);
    let observed = converge::observe(host, &desired)?;
    let mut plan = converge::plan(host, &desired, &observed)?;
    // Port conflicts with foreign DNATs and nftables tables iptables-save cannot show.
    plan.warnings
        .extend(crate::coexist::warnings(&model, &observed));
    let files = match files_wanted {
        Some(f) => f,
        None => files::desired_files(&model, &desired, source)?,
    };
    // Not at boot: the boot apply manages neither files nor the unit, and runs before
    // dbus.service (a connect to the socket-activated bus would wait for it).
    let unit_enabled = query_unit
        .then(|| {
            service_manager(&ctx.root)
                .and_then(|sm| sm.is_enabled(UNIT_NAME))
                .ok()
        })
        .flatten();
    Ok(Prepared {
        model,
        desired,
        observed,
        plan,
        files,
        unit_enabled,
    })
}

/// The unified diff of a prepared plan: rules per family, runtime sysctls, files, unit state.
fn plan_diff(ctx: &Ctx, p: &Prepared, want_enabled: bool) -> Result<(String, bool), Error> {
    let mut out = String::new();
    let mut changed = false;
    for fp in &p.plan.families {
        let d = rules_diff(fp);
        changed |= !fp.is_empty();
        out.push_str(&d);
    }
    let (live, want) = &p.plan.sysctl_view;
    if p.plan.sysctl_changes() {
        changed = true;
        out.push_str(&diff::unified(
            live,
            want,
            "sysctl (live)",
            "sysctl (desired)",
        ));
    }
    for f in &p.files {
        let live = files::read(&ctx.root, f.target)?;
        if live != f.content {
            changed = true;
            let shown = ctx.root.path(f.target).display().to_string();
            let a = live.unwrap_or_default();
            let b = f.content.clone().unwrap_or_default();
            let d = diff::unified(
                &a,
                &b,
                &format!("{shown} (live)"),
                &format!("{shown} (desired)"),
            );
            out.push_str(&d);
        }
    }
    match p.unit_enabled {
        Some(e) if e != want_enabled => {
            changed = true;
            out.push_str(&format!(
                "unit {UNIT_NAME}: {} -> {}\n",
                enabled_word(e),
                enabled_word(want_enabled)
            ));
        }
        _ => {}
    }
    Ok((out, changed))
}

fn enabled_word(e: bool) -> &'static str {
    if e { "enabled" } else { "disabled" }
}

fn rules_diff(fp: &FamilyPlan) -> String {
    if fp.is_empty() {
        return String::new();
    }
    let name = fp.family.name();
    let d = diff::unified(
        &fp.live_view,
        &fp.desired_view,
        &format!("{name} rules (live)"),
        &format!("{name} rules (desired)"),
    );
    if d.is_empty() {
        // Same text, different placement (e.g. a jump in the wrong chain position).
        return format!("{name}: jumps to re-place\n");
    }
    d
}

fn live_host() -> (Iptables, ProcSys) {
    (Iptables::detect(), ProcSys)
}

fn plan_file(ctx: &Ctx, path: &Path) -> Result<Outcome, Error> {
    let (nf, sc) = live_host();
    // The live rules are read while the file is parsed and rendered.
    let nf = nf.prefetch(&ctx.root);
    let (model, source) = load(path)?;
    let host = Host {
        netfilter: &nf,
        sysctl: &sc,
    };
    let p = prepare(ctx, &host, model, &source, None, true)?;
    let (d, changed) = plan_diff(ctx, &p, true)?;
    let mut out = Outcome {
        changed,
        diff: d,
        changes_exit_2: true,
        warnings: p.plan.warnings.clone(),
        ..Outcome::default()
    };
    if !changed {
        out.notes.push("in sync: nothing to change".into());
    }
    if p.unit_enabled.is_none() && !ctx.root.is_offline() {
        out.warnings
            .push("cannot ask systemd whether the unit is enabled (no system bus?)".into());
    }
    Ok(out)
}

fn apply_file(ctx: &Ctx, path: &Path, boot: bool) -> Result<Outcome, Error> {
    let _lock = persist::RunLock::acquire(&ctx.root, persist::DEFAULT_LOCK_TIMEOUT)?;
    let (nf, sc) = live_host();
    // Under the lock, the live rules are read while the file is parsed and rendered.
    let nf = nf.prefetch(&ctx.root);
    let (model, source) = load(path)?;
    let host = Host {
        netfilter: &nf,
        sysctl: &sc,
    };
    // At boot the unit applies the persisted copy: files and unit are already as they should be.
    let files_wanted = boot.then(Vec::new);
    let p = prepare(ctx, &host, model, &source, files_wanted, !boot)?;
    let (d, changed) = plan_diff(ctx, &p, true)?;
    let d = if boot { String::new() } else { d };
    let mut out = Outcome {
        changed,
        diff: d,
        warnings: p.plan.warnings.clone(),
        ..Outcome::default()
    };
    if !boot && let Some(problem) = files::unit_binary_problem(&files::unit_binary()) {
        out.warnings.push(problem);
    }
    if !changed && (boot || p.unit_enabled == Some(true)) {
        // The boot unit and the re-check timer run this every minute: a converged host should
        // not repeat the same warnings into the journal each time.
        if boot {
            out.warnings.clear();
        }
        out.notes.push("in sync: nothing to change".into());
        return Ok(out);
    }
    let report = converge::apply(&host, &p.model, &p.desired, &p.observed, &p.plan)?;
    out.warnings.extend(report.warnings);
    if !boot {
        let mut journal = FileJournal::default();
        let result = write_files_and_enable(ctx, &p, &mut journal);
        if let Err(cause) = result {
            let back = journal
                .rollback()
                .map_err(Error::from)
                .and_then(|_| undo_kernel(&host, &p));
            return Err(match back {
                Ok(()) => Error::RolledBack {
                    cause: Box::new(cause),
                },
                Err(rb) => Error::RollbackFailed {
                    cause: Box::new(cause),
                    rollback: Box::new(rb),
                },
            });
        }
    }
    let fams: Vec<&str> = report.restored_families.iter().map(|f| f.name()).collect();
    out.notes.push(format!(
        "applied: {} rule set(s) rewritten{}, {} sysctl(s) set",
        fams.len(),
        if fams.is_empty() {
            String::new()
        } else {
            format!(" ({})", fams.join(", "))
        },
        report.sysctls_set.len()
    ));
    Ok(out)
}

fn write_files_and_enable(ctx: &Ctx, p: &Prepared, journal: &mut FileJournal) -> Result<(), Error> {
    let mut unit_changed = false;
    for f in &p.files {
        let changed = journal.converge(&ctx.root, f)?;
        unit_changed |= changed && f.target == crate::unit::UNIT_PATH;
    }
    let sm = service_manager(&ctx.root)?;
    if unit_changed {
        sm.reload()?;
    }
    if p.unit_enabled != Some(true) {
        sm.enable(UNIT_NAME)?;
        // Runs after this apply releases the lock; finds the host in sync and stays active.
        sm.start_no_wait(UNIT_NAME)?;
    }
    Ok(())
}

/// Put the kernel and sysctls back as observed before this apply (files are done by the journal).
fn undo_kernel(host: &Host, p: &Prepared) -> Result<(), Error> {
    let changed: Vec<&converge::SysctlChange> = p.plan.sysctls.iter().collect();
    converge::rollback(host, &p.desired.prefix, &p.observed, &Family::ALL, &changed)
}

/// The prefix of the persisted state, if there is one that parses.
pub fn persisted_prefix(root: &Root) -> Option<String> {
    let text = files::read(root, STATE_PATH).ok().flatten()?;
    validate::load_str(STATE_PATH, &text).ok().map(|m| m.prefix)
}

fn remove(ctx: &Ctx, prefix: Option<&str>) -> Result<Outcome, Error> {
    let _lock = persist::RunLock::acquire(&ctx.root, persist::DEFAULT_LOCK_TIMEOUT)?;
    let prefix = prefix
        .map(str::to_string)
        .or_else(|| persisted_prefix(&ctx.root))
        .unwrap_or_else(|| names::DEFAULT_PREFIX.to_string());
    if let Some(problem) = names::prefix_problem(&prefix) {
        return Err(Error::Usage(problem));
    }
    let (nf, sc) = live_host();
    let host = Host {
        netfilter: &nf,
        sysctl: &sc,
    };
    let p = prepare(
        ctx,
        &host,
        Model::empty(&prefix),
        "",
        Some(files::no_files()),
        true,
    )?;
    let (d, changed) = plan_diff(ctx, &p, false)?;
    let mut out = Outcome {
        changed,
        diff: d,
        warnings: p.plan.warnings.clone(),
        ..Outcome::default()
    };
    if p.unit_enabled == Some(true) {
        match service_manager(&ctx.root).and_then(|sm| sm.disable(UNIT_NAME)) {
            Ok(()) => {}
            Err(e) => out
                .warnings
                .push(format!("could not disable {UNIT_NAME}: {e}")),
        }
    }
    converge::apply(&host, &p.model, &p.desired, &p.observed, &p.plan)?;
    let mut journal = FileJournal::default();
    for f in &p.files {
        journal.converge(&ctx.root, f)?;
    }
    if !ctx.root.is_offline()
        && let Ok(sm) = service_manager(&ctx.root)
    {
        let _ = sm.reload();
    }
    out.notes.push(if changed {
        format!("removed everything under prefix {prefix}")
    } else {
        "nothing to remove".into()
    });
    Ok(out)
}

/// Colour a diff for the terminal if wanted.
pub fn present_diff(ctx: &Ctx, d: &str) -> String {
    if ctx.color {
        diff::colorize(d)
    } else {
        d.to_string()
    }
}
