//! Witness flags of `convert` and the `witness` command (`hash`, `dump`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};

use crate::ir::build::WitnessOptions;
use crate::ir::redact::Redactor;
use crate::output::filter::Filter;
use crate::pipeline::OutputOptions;

/// Which outputs `convert` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Formats {
    pub har: bool,
    pub witness: bool,
}

fn parse_formats(s: &str) -> Result<Formats, String> {
    let mut f = Formats { har: false, witness: false };
    for part in s.split(',') {
        match part.trim() {
            "har" => f.har = true,
            "witness" => f.witness = true,
            other => return Err(format!("unknown format '{other}' (har, witness or har,witness)")),
        }
    }
    Ok(f)
}

/// Output flags of `convert`.
#[derive(Args, Debug)]
pub struct OutputArgs {
    /// What to write: har, witness, or har,witness (both in one pass). With witness alone the
    /// witnesses go to OUT (a directory gets NAME.witness per input); with both, the HAR goes to
    /// OUT and the witnesses next to it, its extension replaced by .witness. Witness files are
    /// Witness messages (api_spec) each preceded by its varint length.
    #[arg(short = 'f', long = "format", value_name = "FORMATS", default_value = "har", value_parser = parse_formats)]
    pub format: Formats,

    /// Drop a witness whose hash was already written to the same file (the first one stays).
    #[arg(long)]
    pub dedup: bool,

    /// Write witness paths as templates: identifier segments (numbers, UUIDs, hashes, random
    /// tokens) become {id}, and their values HTTPPath arguments.
    #[arg(long)]
    pub template_paths: bool,

    /// Replace sensitive values in both outputs: passwords, tokens, API keys, secrets,
    /// credentials, cookie values (by name), and JWTs, bearer credentials, common API-key
    /// formats and card numbers (by value).
    #[arg(long)]
    pub redact: bool,

    /// More patterns to redact (turns redaction on): one regular expression per line matched
    /// against values, or name:REGEX matched against field names; # starts a comment.
    #[arg(long, value_name = "FILE")]
    pub redact_patterns: Option<PathBuf>,

    /// Replace every value in witnesses by the zero value of its type (types and formats are
    /// kept).
    #[arg(long)]
    pub zero_values: bool,

    /// Elements kept of each list in a witness body (the rest is read, counted, not kept);
    /// 0 keeps them all.
    #[arg(long, value_name = "N", default_value_t = crate::ir::body::MAX_LIST)]
    pub max_list: usize,

    /// Keep only exchanges whose host (Host header, port left out) matches REGEX; repeatable.
    /// !REGEX leaves out the hosts that match.
    #[arg(long = "host", value_name = "REGEX")]
    pub hosts: Vec<String>,

    /// Keep only exchanges whose path (no query) matches REGEX; repeatable. !REGEX leaves out
    /// the paths that match.
    #[arg(long = "path", value_name = "REGEX")]
    pub paths: Vec<String>,
}

impl OutputArgs {
    /// The validated output options.
    pub fn options(&self) -> Result<OutputOptions, String> {
        let redact = match &self.redact_patterns {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                Some(Arc::new(Redactor::with_patterns(&text).map_err(|e| format!("{}: {e}", p.display()))?))
            }
            None if self.redact => Some(Arc::new(Redactor::builtin())),
            None => None,
        };
        let filter = Filter::from_patterns(&self.hosts, &self.paths)?;
        let witness_only = [self.dedup, self.template_paths, self.zero_values];
        if !self.format.witness && witness_only.iter().any(|&b| b) {
            return Err("--dedup, --template-paths and --zero-values need -f witness or -f har,witness".into());
        }
        Ok(OutputOptions {
            witness: WitnessOptions {
                template_paths: self.template_paths,
                zero_values: self.zero_values,
                max_list: Some(self.max_list),
                ..Default::default()
            },
            dedup: self.dedup,
            filter: (!filter.is_empty()).then(|| Arc::new(filter)),
            redact,
        })
    }
}

/// The witness file that goes with a HAR target: its extension replaced by `.witness`.
pub fn witness_path(har: &Path) -> PathBuf {
    har.with_extension("witness")
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  apitool witness hash capture.witness
  apitool witness dump capture.witness | jq .method
  apitool witness dump --text capture.witness

Exit status: 0 every file read; 1 a file could not be read (unreadable, not witnesses); 2 bad \
flags.")]
pub struct WitnessArgs {
    #[command(subcommand)]
    pub command: WitnessCommand,
}

#[derive(Subcommand, Debug)]
pub enum WitnessCommand {
    /// Print one line per witness: its hash (base64url with padding), method and path.
    /// Reads witness files (length-delimited) and protobuf text-format witnesses.
    #[command(after_help = "Example: apitool witness hash a.witness b.witness\n\n\
Common flags: -q prints nothing on standard error but errors (the default too); -v also \
prints on standard error how many witnesses each file held; --color colours the apitool: of \
error messages (red).\n\nExit status: 0 every file read; 1 a file could not be read; 2 bad \
flags.")]
    Hash {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: crate::cli::CommonArgs,
    },
    /// Print witnesses as JSON, one per line (protobuf's JSON mapping), or as text format.
    #[command(after_help = "Example: apitool witness dump capture.witness | jq .method\n\n\
Common flags: -q prints nothing on standard error but errors (the default too); -v also \
prints on standard error how many witnesses the file held; --color colours the apitool: of \
error messages (red).\n\nExit status: 0 the file was read; 1 it could not be read; 2 bad \
flags.")]
    Dump {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Protobuf text format instead of JSON (witnesses separated by a blank line).
        #[arg(long)]
        text: bool,
        #[command(flatten)]
        common: crate::cli::CommonArgs,
    },
}

/// Runs `apitool witness`; returns the exit status (0, 1 when a file could not be read).
pub fn command(args: &WitnessArgs) -> i32 {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = false;
    let (files, common): (Vec<&PathBuf>, _) = match &args.command {
        WitnessCommand::Hash { files, common } => (files.iter().collect(), common),
        WitnessCommand::Dump { file, common, .. } => (vec![file], common),
    };
    let color = common.color.stderr();
    let err = crate::cli::error_prefix(color);
    for f in files {
        let bytes = match if f.as_os_str() == "-" {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).map(|_| b)
        } else {
            std::fs::read(f)
        } {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{err} {}: {e}", f.display());
                failed = true;
                continue;
            }
        };
        let ws = match crate::output::witness::read_witnesses(&bytes) {
            Ok(ws) => ws,
            Err(e) => {
                eprintln!("{err} {}: {e}", f.display());
                failed = true;
                continue;
            }
        };
        let mut h = crate::ir::ObjectHasher::new();
        let r = ws.iter().enumerate().try_for_each(|(i, w)| match &args.command {
            WitnessCommand::Hash { .. } => {
                let (method, path) = match w.method.as_ref().and_then(|m| m.meta.as_ref()).and_then(|m| m.meta.as_ref()) {
                    Some(crate::ir::pb::method_meta::Meta::Http(h)) => (h.method.as_str(), h.path_template.as_str()),
                    _ => ("", ""),
                };
                writeln!(out, "{} {method} {path}", h.digest(w))
            }
            WitnessCommand::Dump { text: false, .. } => writeln!(out, "{}", crate::ir::json::witness(w)),
            WitnessCommand::Dump { text: true, .. } => {
                if i > 0 {
                    writeln!(out)?;
                }
                out.write_all(crate::ir::text::to_text(w).as_bytes())
            }
        });
        if let Err(e) = r.and_then(|_| out.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return if failed { 1 } else { 0 };
            }
            eprintln!("{err} standard output: {e}");
            return 1;
        }
        if common.verbose > 0 {
            let n = ws.len();
            eprintln!("{}: {n} {}", crate::cli::input_name(f), if n == 1 { "witness" } else { "witnesses" });
        }
    }
    if failed { 1 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(parse_formats("har").unwrap(), Formats { har: true, witness: false });
        assert_eq!(parse_formats("har,witness").unwrap(), Formats { har: true, witness: true });
        assert_eq!(parse_formats("witness").unwrap(), Formats { har: false, witness: true });
        assert!(parse_formats("json").is_err());
        assert_eq!(witness_path(Path::new("out/a.har")), Path::new("out/a.witness"));
        assert_eq!(witness_path(Path::new("a")), Path::new("a.witness"));
    }
}
