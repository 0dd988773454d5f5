//! `make install` / `make uninstall` (scripts/install), with the debug binaries `make test`
//! builds (a release build takes far too long for a test; the script is the same): into a
//! temporary prefix that already holds a user's files, a tool runs from there by name with
//! only the prefix and the system on PATH, bash loads a completion file, `man -l` renders every
//! page without a troff warning, and uninstall leaves the prefix exactly as it was. Bad input
//! (a prefix that cannot be written, a file in the way) is one line and exit 2, nothing
//! written.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ampkit_e2e::{bin_dir, repo_root, tool};

/// Every program the project ships: the [[bin]] names of tools/*/Cargo.toml.
const PROGRAMS: [&str; 9] = [
    "amp-local",
    "amp-workspace",
    "envoy-traffic",
    "grafana-import",
    "irsa-role",
    "promql",
    "render-agent-config",
    "sns-alert",
    "teardown",
];

/// PATH for "a shell with the install on it": the prefix's bin, then the system's.
fn path_with(prefix: &Path) -> String {
    format!(
        "{}:/usr/local/bin:/usr/bin:/bin",
        prefix.join("bin").display()
    )
}

fn install_script() -> Command {
    let mut command = Command::new(repo_root().join("scripts").join("install"));
    command.stdin(Stdio::null());
    command
}

fn install(prefix: &Path) -> Output {
    install_script()
        .arg("--prefix")
        .arg(prefix)
        .arg("--bin-dir")
        .arg(bin_dir())
        .output()
        .unwrap()
}

fn uninstall(prefix: &Path) -> Output {
    install_script()
        .args(["--uninstall", "--prefix"])
        .arg(prefix)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn expect_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// A refusal: exit 2 and one line on stderr that contains `words`.
fn expect_refusal(what: &str, output: &Output, words: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{what}: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{what}: one line, got:\n{stderr}"
    );
    assert!(stderr.contains(words), "{what}: `{words}` not in: {stderr}");
}

/// Everything under `root`: relative path -> file contents (`None` for a directory).
fn tree(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root).unwrap().to_owned();
            if path.is_dir() {
                into.insert(relative, None);
                walk(root, &path, into);
            } else {
                into.insert(relative, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(root, root, &mut files);
    files
}

/// A program the test needs from the machine, by name; a missing one fails with the fix.
fn system_program(name: &str, fix: &str) -> PathBuf {
    ["/usr/local/bin", "/usr/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("`{name}` is missing on this machine: {fix}"))
}

/// `page` rendered for a terminal, with troff's warnings (stderr) kept: `man -l` as a user
/// would run it, or groff where man-db is not installed.
fn render_man_page(page: &Path) -> Output {
    let man = ["/usr/bin/man", "/bin/man"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file());
    let mut command = match man {
        Some(man) => {
            let mut command = Command::new(man);
            command
                .args(["--warnings", "-l"])
                .arg(page)
                .env("MANPAGER", "cat")
                .env("MANWIDTH", "100");
            command
        }
        None => {
            let groff = system_program(
                "groff",
                "man -l (Debian's man-db, which brings groff) renders the pages: \
                 `make setup` installs it when run as root, else apt-get install man-db",
            );
            let mut command = Command::new(groff);
            command.args(["-man", "-Tutf8", "-ww"]).arg(page);
            command
        }
    };
    command.stdin(Stdio::null()).output().unwrap()
}

#[test]
fn install_into_a_prefix_runs_completes_and_documents_every_tool_and_uninstall_restores_it() {
    let bash = system_program("bash", "apt-get install bash");
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    // A prefix in use: the user's own program and document, which must survive both ways.
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::create_dir_all(prefix.join("share/man/man1")).unwrap();
    std::fs::write(prefix.join("bin/my-script"), "#!/bin/sh\necho mine\n").unwrap();
    std::fs::write(prefix.join("share/man/man1/my-script.1"), ".TH MINE 1\n").unwrap();
    let before = tree(&prefix);

    let installed = install(&prefix);
    expect_success("install", &installed);
    let manifest = std::fs::read_to_string(prefix.join("share/ampkit/installed-files")).unwrap();
    for name in PROGRAMS {
        for file in [
            format!("bin/{name}"),
            format!("share/bash-completion/completions/{name}"),
            format!("share/zsh/site-functions/_{name}"),
            format!("share/fish/vendor_completions.d/{name}.fish"),
            format!("share/man/man1/{name}.1"),
        ] {
            assert!(prefix.join(&file).is_file(), "{file} was not installed");
            assert!(
                manifest.lines().any(|line| line == format!("file {file}")),
                "{file} is not in the manifest:\n{manifest}"
            );
        }
        let zsh = std::fs::read_to_string(prefix.join(format!("share/zsh/site-functions/_{name}")))
            .unwrap();
        assert!(
            zsh.starts_with(&format!("#compdef {name}")),
            "{name}: {zsh}"
        );
        let fish = std::fs::read_to_string(
            prefix.join(format!("share/fish/vendor_completions.d/{name}.fish")),
        )
        .unwrap();
        assert!(
            fish.contains(&format!("complete -c {name}")),
            "{name}: {fish}"
        );
    }
    // Not the user's files: those were there before and are not in the manifest.
    assert!(!manifest.contains("my-script"), "{manifest}");

    // By name, from the prefix, with nothing of the build on PATH: the version, and a document
    // passed through a real run (a dry-run teardown of an empty ledger needs no service).
    let run = Command::new(&bash)
        .args(["-c", "command -v promql && promql --version"])
        .env_clear()
        .env("PATH", path_with(&prefix))
        .output()
        .unwrap();
    expect_success("promql --version from the prefix", &run);
    assert_eq!(
        text(&run.stdout),
        format!(
            "{}\npromql {}\n",
            prefix.join("bin/promql").display(),
            env!("CARGO_PKG_VERSION")
        )
    );
    let run = Command::new(&bash)
        .args([
            "-c",
            "echo '{\"resources\":[],\"mine\":1}' | teardown --dry-run",
        ])
        .env_clear()
        .env("PATH", path_with(&prefix))
        .env("HOME", dir.path())
        .output()
        .unwrap();
    expect_success("teardown --dry-run from the prefix", &run);
    let doc: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(doc["mine"], 1, "the document passed through: {doc}");
    assert_eq!(doc["teardown"]["dryRun"], true, "{doc}");

    // bash loads the completion file and registers the tool.
    let completion = prefix.join("share/bash-completion/completions/promql");
    let run = Command::new(&bash)
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p promql",
            completion.display()
        ))
        .output()
        .unwrap();
    expect_success("bash sourcing the completion", &run);
    assert!(
        text(&run.stdout).contains("-F _promql promql"),
        "{}",
        text(&run.stdout)
    );

    // Every page renders without a troff warning; the tool's page names its subcommands'
    // pages, which are installed too.
    let man1 = prefix.join("share/man/man1");
    let mut pages = 0;
    for entry in std::fs::read_dir(&man1).unwrap() {
        let page = entry.unwrap().path();
        let name = page.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "my-script" {
            continue;
        }
        let rendered = render_man_page(&page);
        expect_success(&format!("rendering {}", page.display()), &rendered);
        // A long unbreakable token (amp-local's `--scraper-pod` syntax) cannot be justified at
        // some widths: layout, not a fault of the page. Any other warning is one.
        let warnings: Vec<String> = text(&rendered.stderr)
            .lines()
            .filter(|line| {
                !line.contains("cannot adjust line") && !line.contains("cannot break line")
            })
            .map(str::to_owned)
            .collect();
        assert!(
            warnings.is_empty(),
            "{}: troff warnings: {warnings:?}",
            page.display()
        );
        let shown = text(&rendered.stdout);
        for section in ["NAME", "SYNOPSIS", "OPTIONS", "EXIT STATUS"] {
            assert!(shown.contains(section), "{name}: no {section} in\n{shown}");
        }
        assert!(shown.contains(&name), "{name}: not named in\n{shown}");
        pages += 1;
    }
    let promql_page = text(&render_man_page(&man1.join("promql.1")).stdout);
    for sub in ["query", "range", "wait"] {
        assert!(
            promql_page.contains(&format!("promql-{sub}(1)")),
            "promql.1 does not name promql-{sub}(1):\n{promql_page}"
        );
        assert!(
            man1.join(format!("promql-{sub}.1")).is_file(),
            "promql-{sub}.1"
        );
    }
    let query_page = text(&render_man_page(&man1.join("promql-query.1")).stdout);
    assert!(query_page.contains("--workspace-id"), "{query_page}");
    assert!(query_page.contains("promql(1)"), "SEE ALSO: {query_page}");
    // A subcommand's page shows the tool's examples that run it, not the others.
    assert!(
        query_page.contains("| promql query 'sum(rate("),
        "{query_page}"
    );
    assert!(!query_page.contains("range 'up'"), "{query_page}");
    // One page per tool plus one per subcommand (amp-workspace has seven, promql six, ...).
    assert!(pages > PROGRAMS.len() + 10, "{pages} pages");

    // Installing again over the same prefix replaces the earlier install, no more.
    expect_success("install again", &install(&prefix));
    let again = std::fs::read_to_string(prefix.join("share/ampkit/installed-files")).unwrap();
    assert_eq!(again, manifest);

    expect_success("uninstall", &uninstall(&prefix));
    assert_eq!(
        tree(&prefix),
        before,
        "uninstall left the prefix different from before the install"
    );
    // Nothing is left to uninstall: said, exit 2.
    expect_refusal(
        "uninstall twice",
        &uninstall(&prefix),
        "nothing to uninstall",
    );

    // A prefix that did not exist is gone again after uninstall.
    let fresh = dir.path().join("fresh");
    expect_success("install into a new prefix", &install(&fresh));
    expect_success("uninstall from it", &uninstall(&fresh));
    assert!(!fresh.exists(), "{} is left", fresh.display());
}

#[test]
fn install_refuses_a_prefix_it_cannot_write_and_a_file_it_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    // Under a regular file: no directory can be made there, whoever runs the test (root may
    // write anywhere else).
    std::fs::write(dir.path().join("a-file"), "").unwrap();
    let output = install(&dir.path().join("a-file/prefix"));
    expect_refusal("prefix under a file", &output, "not a directory");

    // A user's file where a tool's page would go: refused before anything is written.
    let prefix = dir.path().join("taken");
    std::fs::create_dir_all(prefix.join("share/man/man1")).unwrap();
    std::fs::write(prefix.join("share/man/man1/teardown.1"), "someone else's").unwrap();
    let before = tree(&prefix);
    let output = install(&prefix);
    expect_refusal("a file in the way", &output, "teardown.1 exists");
    assert_eq!(tree(&prefix), before, "a refused install wrote something");

    // No binaries where --bin-dir points.
    let output = install_script()
        .arg("--prefix")
        .arg(dir.path().join("p"))
        .arg("--bin-dir")
        .arg(dir.path().join("no-such-dir"))
        .output()
        .unwrap();
    expect_refusal("no binaries", &output, "make release");
    assert!(!dir.path().join("p").exists());

    // The flag that writes the pages refuses a subcommand the tool does not have.
    tool("promql")
        .args(["--man", "nope"])
        .run()
        .expect_usage_error("--man");
}
