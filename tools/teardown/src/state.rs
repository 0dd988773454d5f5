//! `--state FILE`: the document read from a file and rewritten after every entry.
//!
//! Why a file and not only stdout: stdout is one document written once, at the end (the
//! contract), so a teardown killed half-way would leave its reader nothing, and the ledger
//! would still list what was already deleted. The file is replaced atomically (a sibling
//! temporary file, flushed, then renamed over it), so whoever reads it — a second teardown,
//! a person — sees either the previous document or the next one, never half of one.

use std::io::Write;
use std::path::Path;

use ampkit::doc::StateDoc;
use ampkit::error::{Error, Result};

pub fn read(path: &Path) -> Result<StateDoc> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!("--state {}: {e}", path.display()))
            .with_hint("name the state file an earlier run wrote, e.g. out/state.json")
    })?;
    StateDoc::parse(&text).map_err(|e| e.context(format!("--state {}", path.display())))
}

pub fn write(path: &Path, doc: &StateDoc) -> Result<()> {
    let failed = |e: std::io::Error| {
        Error::internal(format!("could not rewrite --state {}: {e}", path.display()))
            .with_hint("check the directory is writable; the document also goes to stdout")
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state.json".to_owned());
    let tmp = dir.join(format!(".{name}.teardown-{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp).map_err(failed)?;
    file.write_all(doc.render(true).as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(failed)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed(e)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_replaced_whole_and_reads_back() {
        let dir = std::env::temp_dir().join(format!("teardown-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        std::fs::write(&path, "{\"old\": true}").unwrap();
        let doc = StateDoc::parse(r#"{"resources": [], "kept": 1}"#).unwrap();
        write(&path, &doc).unwrap();
        assert_eq!(read(&path).unwrap(), doc);
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file stays behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
