//! Cassettes: what `az`, `kubectl` and `helm` did in a recorded run, as
//! human-readable JSON, and how a call is matched against them on replay.
//!
//! A call matches a recording when its argv and stdin are equal after
//! normalisation: GUIDs, temp paths and the runbook's folder are replaced by
//! placeholders on both sides, so a cassette recorded by one user replays
//! for another. Identical calls are answered in recorded order, and the last
//! answer repeats.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cassette {
    #[serde(default)]
    pub version: u32,
    /// The runbook these calls were recorded from.
    #[serde(default)]
    pub runbook: String,
    pub calls: Vec<Call>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The program name and its arguments, as the cell passed them.
    pub argv: Vec<String>,
    /// What the call read on stdin (a manifest piped to `kubectl apply -f -`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdin: String,
    /// What it printed, when written as two blobs (hand-written cassettes;
    /// replayed stdout first).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
    /// What it printed, stream by stream in the order it did (recorded
    /// cassettes): `[{"stderr": "Packing..."}, {"stdout": "Succeeded"}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<Chunk>,
    #[serde(default)]
    pub exit: i32,
}

/// A piece of a call's output on one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Chunk {
    Stdout(String),
    Stderr(String),
}

impl Chunk {
    pub fn text(&self) -> &str {
        match self {
            Chunk::Stdout(text) | Chunk::Stderr(text) => text,
        }
    }

    fn map(&self, mut f: impl FnMut(&str) -> String) -> Chunk {
        match self {
            Chunk::Stdout(text) => Chunk::Stdout(f(text)),
            Chunk::Stderr(text) => Chunk::Stderr(f(text)),
        }
    }
}

impl Call {
    /// What the call printed, in order: the recorded chunks, or the two
    /// blobs (stdout first).
    pub fn chunks(&self) -> Vec<Chunk> {
        if !self.output.is_empty() {
            return self.output.clone();
        }
        let mut chunks = Vec::new();
        if !self.stdout.is_empty() {
            chunks.push(Chunk::Stdout(self.stdout.clone()));
        }
        if !self.stderr.is_empty() {
            chunks.push(Chunk::Stderr(self.stderr.clone()));
        }
        chunks
    }

    /// Everything it printed on stdout.
    pub fn stdout_text(&self) -> String {
        self.chunks()
            .iter()
            .filter(|c| matches!(c, Chunk::Stdout(_)))
            .map(Chunk::text)
            .collect()
    }
}

/// Appends `text` on `stream` to `chunks`, joining it to the last chunk
/// when that one is of the same stream.
pub fn push_chunk(chunks: &mut Vec<Chunk>, chunk: Chunk) {
    match (chunks.last_mut(), &chunk) {
        (Some(Chunk::Stdout(last)), Chunk::Stdout(more))
        | (Some(Chunk::Stderr(last)), Chunk::Stderr(more)) => last.push_str(more),
        _ => chunks.push(chunk),
    }
}

/// The cassette file of a runbook within a fixture folder.
pub fn path_in(dir: &Path, runbook: &Path) -> PathBuf {
    dir.join(format!("{}.json", crate::paths::name_of(runbook)))
}

impl Cassette {
    /// Reads a cassette; errors name the file, line and column.
    /// A cassette must be of a version this tool reads (1, or none given)
    /// and every exit status must be one a process can have (0 to 255).
    pub fn load(path: &Path) -> Result<Cassette, String> {
        // Only a regular file: a FIFO or a device named by a document's
        // `replay:` would be waited on (or read) for ever.
        if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
            return Err(format!(
                "{}: invalid cassette: not a regular file",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let cassette: Cassette = serde_json::from_str(&text).map_err(|e| {
            let message = crate::diagnostic::without_location(e.to_string());
            format!(
                "{}:{}:{}: invalid cassette: {message}",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        if cassette.version > VERSION {
            return Err(format!(
                "{}: invalid cassette: version {} is not one this runbook reads (it reads version {VERSION})",
                path.display(),
                cassette.version
            ));
        }
        if let Some((i, call)) = cassette
            .calls
            .iter()
            .enumerate()
            .find(|(_, c)| !(0..=255).contains(&c.exit))
        {
            return Err(format!(
                "{}: invalid cassette: call {} (`{}`) has exit status {}; a process exits with 0 to 255",
                path.display(),
                i + 1,
                shell_words(&call.argv),
                call.exit
            ));
        }
        Ok(cassette)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("cassettes serialise") + "\n"
    }
}

fn guid_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
            .expect("valid regex")
    })
}

fn temp_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"/tmp/[A-Za-z0-9._-]+").expect("valid regex"))
}

/// The placeholder for the runbook's folder in cassettes.
pub const RUNBOOK_DIR: &str = "$RUNBOOK_DIR";

/// The form calls are compared in: the runbook folder, GUIDs and temp
/// paths replaced by placeholders.
pub fn match_form(text: &str, folder: &str) -> String {
    let text = if folder.len() > 1 {
        text.replace(folder, RUNBOOK_DIR)
    } else {
        text.to_string()
    };
    let text = guid_re().replace_all(&text, "<GUID>");
    temp_re().replace_all(&text, "<TMP>").into_owned()
}

/// Answers calls from a cassette, remembering how far each repeated call
/// has got.
#[derive(Debug, Default)]
pub struct Player {
    calls: Vec<Call>,
    keys: Vec<(Vec<String>, String)>,
    /// Per match key, how many answers were given.
    cursors: BTreeMap<(Vec<String>, String), usize>,
    folder: String,
}

/// A call that has no recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    pub command_line: String,
    pub closest: Vec<String>,
}

impl Player {
    pub fn new(cassette: Cassette, folder: &Path) -> Player {
        let folder = folder.to_string_lossy().into_owned();
        let keys = cassette
            .calls
            .iter()
            .map(|c| key(&c.argv, &c.stdin, &folder))
            .collect();
        Player {
            calls: cassette.calls,
            keys,
            cursors: BTreeMap::new(),
            folder,
        }
    }

    /// The recorded answer to a call, with `$RUNBOOK_DIR` put back.
    pub fn answer(&mut self, argv: &[String], stdin: &str) -> Result<Call, Miss> {
        let wanted = key(argv, stdin, &self.folder);
        let matching: Vec<usize> = (0..self.calls.len())
            .filter(|&i| self.keys[i] == wanted)
            .collect();
        if matching.is_empty() {
            return Err(Miss {
                command_line: shell_words(argv),
                closest: self.closest(argv),
            });
        }
        let cursor = self.cursors.entry(wanted).or_insert(0);
        let call = &self.calls[matching[(*cursor).min(matching.len() - 1)]];
        *cursor += 1;
        let mut call = call.clone();
        call.output = call
            .chunks()
            .iter()
            .map(|c| c.map(|text| text.replace(RUNBOOK_DIR, &self.folder)))
            .collect();
        call.stdout.clear();
        call.stderr.clear();
        Ok(call)
    }

    /// Up to three recorded command lines most like `argv`.
    fn closest(&self, argv: &[String]) -> Vec<String> {
        let wanted: Vec<String> = argv.iter().map(|a| match_form(a, &self.folder)).collect();
        let mut scored: Vec<(usize, String)> = self
            .calls
            .iter()
            .filter(|c| c.argv.first() == argv.first())
            .map(|c| {
                let theirs: Vec<String> =
                    c.argv.iter().map(|a| match_form(a, &self.folder)).collect();
                let prefix = wanted
                    .iter()
                    .zip(&theirs)
                    .take_while(|(a, b)| a == b)
                    .count();
                let shared = wanted.iter().filter(|a| theirs.contains(a)).count();
                (prefix * 4 + shared, shell_words(&c.argv))
            })
            .collect();
        scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        scored.dedup_by(|a, b| a.1 == b.1);
        scored.into_iter().take(3).map(|(_, line)| line).collect()
    }
}

fn key(argv: &[String], stdin: &str, folder: &str) -> (Vec<String>, String) {
    let argv = argv.iter().map(|a| match_form(a, folder)).collect();
    let stdin = if stdin.is_empty() {
        String::new()
    } else {
        crate::state::hash(&match_form(stdin, folder))
    };
    (argv, stdin)
}

/// A command line as a user would type it.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| crate::template::shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Makes recorded calls shareable: secrets masked, the runbook's folder
/// replaced by `$RUNBOOK_DIR`, and every GUID replaced, consistently, by a
/// stand-in numbered in order of first appearance.
#[derive(Debug, Default)]
pub struct Normalizer {
    guids: BTreeMap<String, String>,
    folder: String,
    /// GUIDs left as they are.
    public: BTreeSet<String>,
}

/// Public ids that are the same in every tenant, and so are no one's
/// secret: first-party application ids and built-in role and app-role ids.
pub const WELL_KNOWN_IDS: [&str; 11] = [
    "00000003-0000-0000-c000-000000000000", // Microsoft Graph (app id)
    "797f4846-ba00-4fd7-ba43-dac1f8f63013", // Azure Service Management
    "04b07795-8ddb-461a-bbee-02f9e1bf7b46", // Azure CLI
    "6dae42f8-4368-4678-94ff-3960e28e3630", // Azure Kubernetes Service AAD Server
    "df021288-bdef-4463-88db-98f22de89214", // Graph app role User.Read.All
    "befefa01-2a29-4197-83a8-272ff33ce314", // role DNS Zone Contributor
    "acdd72a7-3385-48ef-bd42-f606fba81ae7", // role Reader
    "4d97b98b-1d4f-4787-a291-c67834d212e7", // role Network Contributor
    "7f951dda-4ed3-4680-a7ca-43fe172d538d", // role AcrPull
    "b24988ac-6180-42a0-ab88-20f7382dd24c", // role Contributor
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", // role Owner
];

/// The GUIDs a text names literally (lower case): a runbook that writes an
/// id out is telling the reader, not hiding it.
pub fn literal_guids(text: &str) -> BTreeSet<String> {
    guid_re()
        .find_iter(text)
        .map(|m| m.as_str().to_ascii_lowercase())
        .collect()
}

impl Normalizer {
    /// A normaliser that leaves `public` GUIDs (and the well-known ones)
    /// as they are.
    pub fn new(folder: &Path, public: BTreeSet<String>) -> Normalizer {
        let mut public = public;
        public.extend(WELL_KNOWN_IDS.iter().map(|id| id.to_string()));
        Normalizer {
            guids: BTreeMap::new(),
            folder: folder.to_string_lossy().into_owned(),
            public,
        }
    }

    pub fn apply(&mut self, text: &str, masker: &crate::secrets::Masker) -> String {
        let text = masker.mask(text);
        let text = if self.folder.len() > 1 {
            text.replace(&self.folder, RUNBOOK_DIR)
        } else {
            text
        };
        let guids = &mut self.guids;
        let public = &self.public;
        guid_re()
            .replace_all(&text, |c: &regex::Captures| {
                let real = c[0].to_ascii_lowercase();
                if public.contains(&real) {
                    return c[0].to_string();
                }
                let next = guids.len() + 1;
                guids
                    .entry(real)
                    .or_insert_with(|| format!("00000000-0000-0000-0000-{next:012}"))
                    .clone()
            })
            .into_owned()
    }

    pub fn call(&mut self, call: Call, masker: &crate::secrets::Masker) -> Call {
        Call {
            argv: call.argv.iter().map(|a| self.apply(a, masker)).collect(),
            stdin: self.apply(&call.stdin, masker),
            stdout: self.apply(&call.stdout, masker),
            stderr: self.apply(&call.stderr, masker),
            output: call
                .output
                .iter()
                .map(|c| c.map(|text| self.apply(text, masker)))
                .collect(),
            exit: call.exit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(argv: &[&str], stdin: &str, stdout: &str) -> Call {
        Call {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            stdin: stdin.into(),
            stdout: stdout.into(),
            ..Call::default()
        }
    }

    fn args(argv: &[&str]) -> Vec<String> {
        argv.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn answers_in_order_and_repeats_the_last() {
        let cassette = Cassette {
            version: 1,
            runbook: "lab.md".into(),
            calls: vec![
                call(&["kubectl", "get", "pods"], "", "pending\n"),
                call(&["kubectl", "apply", "-f", "-"], "kind: A\n", "a created\n"),
                call(&["kubectl", "get", "pods"], "", "running\n"),
                call(&["kubectl", "apply", "-f", "-"], "kind: B\n", "b created\n"),
            ],
        };
        let mut player = Player::new(cassette, Path::new("/work/lab"));
        let get = args(&["kubectl", "get", "pods"]);
        assert_eq!(player.answer(&get, "").unwrap().stdout_text(), "pending\n");
        assert_eq!(player.answer(&get, "").unwrap().stdout_text(), "running\n");
        assert_eq!(player.answer(&get, "").unwrap().stdout_text(), "running\n");
        let apply = args(&["kubectl", "apply", "-f", "-"]);
        assert_eq!(
            player.answer(&apply, "kind: B\n").unwrap().stdout_text(),
            "b created\n"
        );
        let miss = player.answer(&apply, "kind: C\n").unwrap_err();
        assert_eq!(miss.command_line, "kubectl apply -f -");
        let miss = player
            .answer(&args(&["kubectl", "get", "pods", "-A"]), "")
            .unwrap_err();
        assert_eq!(miss.closest[0], "kubectl get pods");
    }

    #[test]
    fn guids_temp_paths_and_folders_do_not_stop_a_match() {
        let cassette = Cassette {
            calls: vec![call(
                &[
                    "az",
                    "role",
                    "assignment",
                    "create",
                    "--assignee",
                    "00000000-0000-0000-0000-000000000001",
                    "--scope",
                    "$RUNBOOK_DIR/x",
                ],
                "",
                "done in $RUNBOOK_DIR\n",
            )],
            ..Cassette::default()
        };
        let mut player = Player::new(cassette, Path::new("/home/me/lab"));
        let answer = player
            .answer(
                &args(&[
                    "az",
                    "role",
                    "assignment",
                    "create",
                    "--assignee",
                    "6f1c3a2e-9b7d-4c1e-8f00-123456789abc",
                    "--scope",
                    "/home/me/lab/x",
                ]),
                "",
            )
            .unwrap();
        assert_eq!(answer.stdout_text(), "done in /home/me/lab\n");
    }

    #[test]
    fn normalises_recordings_consistently() {
        let mut normalizer = Normalizer::new(Path::new("/home/me/lab"), BTreeSet::new());
        let masker = crate::secrets::Masker::default();
        let a = "6F1C3A2E-9B7D-4C1E-8F00-123456789ABC";
        let b = "11111111-2222-3333-4444-555555555555";
        assert_eq!(
            normalizer.apply(&format!("{a} {b} {} /home/me/lab/k8s", a.to_lowercase()), &masker),
            "00000000-0000-0000-0000-000000000001 00000000-0000-0000-0000-000000000002 00000000-0000-0000-0000-000000000001 $RUNBOOK_DIR/k8s"
        );
        // Ids the runbook names, and public ones, stay as they are.
        let named = "11111111-2222-3333-4444-555555555555".to_string();
        let mut normalizer = Normalizer::new(Path::new("/x"), [named.clone()].into());
        let graph = "00000003-0000-0000-c000-000000000000";
        assert_eq!(
            normalizer.apply(&format!("{named} {graph} {a}"), &masker),
            format!("{named} {graph} 00000000-0000-0000-0000-000000000001")
        );
    }

    #[test]
    fn bad_json_names_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.json");
        std::fs::write(
            &path,
            "{\n  \"version\": 1,\n  \"calls\": [\n    {\"argv\": [\"az\"],}\n  ]\n}\n",
        )
        .unwrap();
        let error = Cassette::load(&path).unwrap_err();
        assert!(error.contains("lab.json:4:"), "{error}");
        assert!(error.contains("invalid cassette"), "{error}");
    }
}
