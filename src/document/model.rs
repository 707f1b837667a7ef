//! The parsed model of a runbook: its settings and its cells, each carrying
//! the byte spans the writer needs to splice outputs back in.

use std::ops::Range;
use std::time::Duration;

use serde::Serialize;

use crate::frontmatter::Settings;

/// A runbook document, parsed. It borrows nothing: the source text stays
/// with the caller and the spans point into it.
#[derive(Debug, Clone, Default)]
pub struct Runbook {
    pub settings: Settings,
    /// The whole front matter block, fences included.
    pub front_matter: Option<Range<usize>>,
    pub cells: Vec<Cell>,
    /// The line terminator used for lines the writer inserts.
    pub newline: &'static str,
}

impl Runbook {
    /// A cell by id or by 1-based number.
    pub fn find(&self, key: &str) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.id.as_deref() == Some(key))
            .or_else(|| {
                let number: usize = key.parse().ok()?;
                self.cells.get(number.checked_sub(1)?)
            })
    }
}

/// What runs a code cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpreter {
    Bash,
    Sh,
    Zsh,
    Pwsh,
    Python,
}

impl Interpreter {
    pub fn from_name(name: &str) -> Option<Interpreter> {
        Some(match name {
            "bash" => Interpreter::Bash,
            "sh" => Interpreter::Sh,
            "zsh" => Interpreter::Zsh,
            // Azure docs' fences for Azure PowerShell.
            "pwsh" | "powershell" | "azurepowershell" | "azurepowershell-interactive" => {
                Interpreter::Pwsh
            }
            "python" | "python3" => Interpreter::Python,
            _ => return None,
        })
    }

    pub fn program(self) -> &'static str {
        match self {
            Interpreter::Bash => "bash",
            Interpreter::Sh => "sh",
            Interpreter::Zsh => "zsh",
            Interpreter::Pwsh => "pwsh",
            Interpreter::Python => "python3",
        }
    }

    /// Whether templated values are shell-quoted in this interpreter's cells.
    pub fn is_posix_shell(self) -> bool {
        matches!(self, Interpreter::Bash | Interpreter::Sh | Interpreter::Zsh)
    }
}

/// The tool tags: cells run by bash whose tag names the tool they drive.
pub const TOOL_TAGS: [&str; 3] = ["az", "kubectl", "helm"];

/// The tool a language word names: a tool tag, or one of the fences Azure
/// docs write Azure CLI examples in (`azurecli`, `azurecli-interactive`,
/// `azure-cli`), which are `az` cells.
pub fn tool_for(lang: &str) -> Option<&'static str> {
    match lang {
        "azurecli" | "azurecli-interactive" | "azure-cli" => Some("az"),
        tag => TOOL_TAGS.iter().copied().find(|t| *t == tag),
    }
}

/// The interpreter for a language word, `shell_setting` answering `shell`.
pub fn interpreter_for(lang: &str, shell_setting: Interpreter) -> Option<Interpreter> {
    match lang {
        "shell" => Some(shell_setting),
        tag if tool_for(tag).is_some() => Some(Interpreter::Bash),
        other => Interpreter::from_name(other),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum CellKind {
    /// Code run by an interpreter.
    Code { interpreter: Interpreter },
    /// A block rendered and written to `path` (relative to the runbook).
    File { path: String, mode: Option<u32> },
}

/// Which exit codes count as success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Code(i32),
    Any,
}

impl Expect {
    pub fn accepts(self, code: i32) -> bool {
        match self {
            Expect::Code(expected) => expected == code,
            Expect::Any => true,
        }
    }
}

/// A variable a cell's stdout becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capture {
    pub name: String,
    pub json: bool,
    pub secret: bool,
}

/// Per-cell options from the attribute list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellOptions {
    pub capture: Option<Capture>,
    pub timeout: Option<Duration>,
    pub retries: u32,
    pub retry_delay: Duration,
    pub expect: Expect,
    pub continue_on_error: bool,
    pub cwd: Option<String>,
    pub confirm: bool,
    pub skip: bool,
    /// `false` for `output=none`.
    pub record_output: bool,
}

impl Default for CellOptions {
    fn default() -> CellOptions {
        CellOptions {
            capture: None,
            timeout: None,
            retries: 0,
            retry_delay: Duration::from_secs(1),
            expect: Expect::Code(0),
            continue_on_error: false,
            cwd: None,
            confirm: false,
            skip: false,
            record_output: true,
        }
    }
}

/// A recorded `output` block under a cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputBlock {
    /// From the start of its opening fence line to the end of its closing
    /// fence line (line terminator excluded).
    pub span: Range<usize>,
    /// Its content, lines joined by `\n`, without a final newline.
    pub text: String,
    /// The `{exit=N}` it carries, 0 when absent.
    pub exit: i32,
    /// `{literal}`: recorded by runbook from output that itself looks like
    /// wildcards (`[..]`, `...`), so it is compared exactly.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub literal: bool,
    pub line: usize,
}

/// An executable block (code or file cell).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// 1-based position among the cells.
    pub number: usize,
    pub id: Option<String>,
    /// The language word as written (`bash`, `kubectl`, `yaml`, ...).
    pub lang: String,
    pub kind: CellKind,
    pub options: CellOptions,
    /// The code, container prefixes removed, `\n` line ends.
    pub body: String,
    /// Whether the body is a template (`false` under the front matter's
    /// `templates: false`: it runs exactly as written).
    pub templated: bool,
    /// Line of the opening fence.
    pub line: usize,
    /// The whole fenced block, from the opening fence's first character.
    pub span: Range<usize>,
    /// The info string's span in the document.
    pub info_span: Range<usize>,
    /// Where an output block is inserted: the end of the closing fence line.
    pub insert_at: usize,
    /// What precedes the fence on its closing line (list indent, `> `),
    /// repeated on every inserted line.
    pub prefix: String,
    pub output: Option<OutputBlock>,
}

impl Cell {
    /// What the template engine reads of the cell: its body, or nothing
    /// when the cell runs exactly as written.
    pub fn template_text(&self) -> &str {
        if self.templated {
            &self.body
        } else {
            ""
        }
    }

    /// The name users address the cell by: its id, or its number.
    pub fn name(&self) -> String {
        self.id.clone().unwrap_or_else(|| self.number.to_string())
    }

    /// Where the cell's block begins: the start of its opening fence's
    /// line (a list indent or `> ` included).
    pub fn block_start(&self, source: &str) -> usize {
        source[..self.span.start]
            .rfind(['\n', '\r'])
            .map_or(0, |i| i + 1)
    }

    /// Where the cell's block ends: the end of its output block, or of its
    /// closing fence line (line terminator excluded).
    pub fn block_end(&self) -> usize {
        self.output.as_ref().map_or(self.insert_at, |o| o.span.end)
    }

    pub fn interpreter(&self) -> Option<Interpreter> {
        match self.kind {
            CellKind::Code { interpreter } => Some(interpreter),
            CellKind::File { .. } => None,
        }
    }

    /// The programs running this cell needs: its interpreter, and the tool
    /// its tag names (`az`, `kubectl`, `helm`). None for file cells.
    pub fn programs(&self) -> Vec<String> {
        let mut programs = Vec::new();
        if let CellKind::Code { interpreter } = self.kind {
            programs.push(interpreter.program().to_string());
            if let Some(tool) = tool_for(&self.lang) {
                programs.push(tool.to_string());
            }
        }
        programs
    }

    /// The first non-blank line of the body, for listings.
    pub fn first_line(&self) -> &str {
        self.body
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
    }
}
