//! Domain config files in Xen's xl.cfg syntax (xl.cfg(5)), as `xl create` reads them.
//!
//! ```text
//! # a comment
//! name = "hello"; vcpus = 2           # statements end at a newline or ';'
//! kernel = 'hello'                    # "..." takes \\ \" \' \n \t \r escapes; '...' is literal
//! memory = 0x20                       # decimal or 0x hex
//! extra = "loglevel=3"                # guest command line; `cmdline` is an alias, `root` prepends root=
//! disk = [ "file:/img,xvda,w",
//!          "file:/img2,xvdb,r", ]     # lists may span lines; trailing comma ok
//! cpu_weight = 512                    # credit scheduler; `weight` is an alias. cap = 50
//! on_crash = "preserve"               # destroy restart preserve rename-restart coredump-destroy coredump-restart
//! ```
//!
//! Keys: name, kernel, memory, vcpus, extra/cmdline, root, on_poweroff, on_reboot, on_crash,
//! cpu_weight/weight, cap, disk, vif. Xen warns about keys it does not know; we reject them so typos
//! are caught, except a few that xl.cfg files commonly carry, which are checked and then ignored:
//! `type` (must be "pv"), `builder` ("generic"/"linux", the old spelling of PV), `maxmem` (>= memory),
//! `maxvcpus` (>= vcpus), `uuid`, `loader` (HVM firmware; XTF's configs say `loader="generic"`).
//! `xenolith create` ([`load_lenient`]) accepts any other key as xl does, with a warning naming
//! file:line and the key. A key may appear once (aliases included). Defaults are xenolith's
//! (memory 16 MiB, as in scenario files), not xl's 128. Values are checked exactly as in scenario
//! files: both go through the same `DomainBuilder`.

use std::path::Path;

use super::input::quote;
use super::scenario::{canonical_key, unknown_key, At, DomainBuilder, DomainSpec, FieldValue, ScenarioError};

/// A value in an xl.cfg file.
#[derive(Debug, Clone, PartialEq)]
pub enum XlValue {
    Str(String),
    Int(i64),
    List(Vec<XlValue>),
}

/// One `key = value` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct XlEntry {
    pub key: String,
    pub line: usize,
    pub value: XlValue,
}

/// Reads an xl.cfg file into a domain spec (its `source`).
pub fn load(path: &Path) -> Result<DomainSpec, ScenarioError> {
    let text = crate::input::read_text(path, crate::input::InputKind::XlConfig)?;
    parse_str(&text, path)
}

/// Reads an xl.cfg file as `xl create` does: keys xenolith does not know are ignored (xl ignores
/// keys it does not use), each with a warning `file:line: key: unknown key "…" ignored`. Every
/// known key is still checked exactly as in [`load`].
pub fn load_lenient(path: &Path) -> Result<(DomainSpec, Vec<String>), ScenarioError> {
    let text = crate::input::read_text(path, crate::input::InputKind::XlConfig)?;
    parse_str_lenient(&text, path)
}

/// [`parse_str`], ignoring unknown keys with a warning each (see [`load_lenient`]).
pub fn parse_str_lenient(text: &str, file: &Path) -> Result<(DomainSpec, Vec<String>), ScenarioError> {
    let mut warnings = Vec::new();
    let spec = parse_into(text, file, Some(&mut warnings))?;
    Ok((spec, warnings))
}

/// Parses xl.cfg text into a domain spec; `file` names it in errors and anchors a relative kernel path.
pub fn parse_str(text: &str, file: &Path) -> Result<DomainSpec, ScenarioError> {
    parse_into(text, file, None)
}

fn parse_into(text: &str, file: &Path, unknown: Option<&mut Vec<String>>) -> Result<DomainSpec, ScenarioError> {
    let mut b = DomainBuilder::default();
    apply_with(text, file, &mut b, unknown)?;
    b.finish(file.to_path_buf(), &At { file: file.to_path_buf(), line: 1, field: String::new() })
}

/// Parses xl.cfg text and sets each of its keys in `b` (a scenario may then override them).
pub(crate) fn apply(text: &str, file: &Path, b: &mut DomainBuilder) -> Result<(), ScenarioError> {
    apply_with(text, file, b, None)
}

/// [`apply`]; with `unknown`, a key xenolith does not know is skipped and a warning pushed there
/// instead of failing.
fn apply_with(text: &str, file: &Path, b: &mut DomainBuilder, mut unknown: Option<&mut Vec<String>>) -> Result<(), ScenarioError> {
    let mut seen: Vec<&str> = Vec::new();
    for e in parse(text, file)? {
        let at = At { file: file.to_path_buf(), line: e.line, field: e.key.clone() };
        let canon = match (canonical_key(&e.key), unknown.as_deref_mut()) {
            (Some(c), _) => c,
            (None, Some(w)) => {
                let m = format!("unknown key {} ignored (as xl does)", quote(&e.key));
                w.push(at.err(m).to_string());
                continue;
            }
            (None, None) => return Err(unknown_key(&at, &e.key, "")),
        };
        if seen.contains(&canon) {
            return Err(at.err(format!("{} given twice (aliases: cmdline/extra, weight/cpu_weight)", quote(&e.key))));
        }
        seen.push(canon);
        let value = match e.value {
            XlValue::Str(s) => FieldValue::Str(s),
            XlValue::Int(i) => FieldValue::Int(i),
            XlValue::List(items) => FieldValue::List(
                items
                    .into_iter()
                    .map(|i| match i {
                        XlValue::Str(s) => Ok(s),
                        _ => Err(at.err("expected a list of strings")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        b.set(canon, value, at)?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Eq,
    Open,
    Close,
    Comma,
    Semi,
    Newline,
}

/// Splits text into `(token, line)`; errors carry their line.
fn lex(text: &str) -> Result<Vec<(Tok, usize)>, (usize, String)> {
    let mut toks = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let tok = match c {
            '\n' => {
                toks.push((Tok::Newline, line));
                line += 1;
                continue;
            }
            c if c.is_whitespace() => continue,
            '#' => {
                while chars.next_if(|&c| c != '\n').is_some() {}
                continue;
            }
            '=' => Tok::Eq,
            '[' => Tok::Open,
            ']' => Tok::Close,
            ',' => Tok::Comma,
            ';' => Tok::Semi,
            '"' | '\'' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None | Some('\n') => return Err((line, "unterminated string".into())),
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => s.push(match chars.next() {
                            Some('n') => '\n',
                            Some('t') => '\t',
                            Some('r') => '\r',
                            Some(e @ ('\\' | '"' | '\'')) => e,
                            e => return Err((line, format!("unknown escape \\{}", e.unwrap_or(' ')))),
                        }),
                        Some(ch) => s.push(ch),
                    }
                }
                Tok::Str(s)
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut w = String::from(c);
                while let Some(ch) = chars.next_if(|ch| ch.is_ascii_alphanumeric() || *ch == '_') {
                    w.push(ch);
                }
                if c.is_ascii_digit() {
                    let n = match w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
                        Some(hex) => i64::from_str_radix(hex, 16),
                        None => w.parse(),
                    };
                    Tok::Int(n.map_err(|_| (line, format!("bad number {}", quote(&w))))?)
                } else {
                    Tok::Ident(w)
                }
            }
            other => return Err((line, format!("unexpected character {other:?}"))),
        };
        toks.push((tok, line));
    }
    Ok(toks)
}

/// Parses xl.cfg text into its statements, in file order.
pub fn parse(text: &str, file: &Path) -> Result<Vec<XlEntry>, ScenarioError> {
    let err = |line: usize, field: &str, msg: String| At { file: file.to_path_buf(), line, field: field.to_string() }.err(msg);
    let toks = lex(text).map_err(|(line, m)| {
        let key = text.lines().nth(line - 1).and_then(|l| l.split_once('=')).map(|(k, _)| k.trim());
        err(line, key.filter(|k| !k.is_empty()).unwrap_or("syntax"), format!("syntax error: {m}"))
    })?;
    let last_line = text.lines().count().max(1);
    let mut p = Parser { toks: &toks, pos: 0, last_line };
    let mut out = Vec::new();
    loop {
        p.skip(|t| matches!(t, Tok::Newline | Tok::Semi));
        let Some((tok, line)) = p.next() else { break };
        let Tok::Ident(key) = tok else {
            return Err(err(line, "syntax", format!("syntax error: expected a key, found {}", describe(Some(&tok)))));
        };
        match p.next() {
            Some((Tok::Eq, _)) => {}
            t => return Err(err(p.line(&t), &key, format!("syntax error: expected '=', found {}", describe(t.map(|t| t.0).as_ref())))),
        }
        let value = p.value(0).map_err(|(l, m)| err(l, &key, format!("syntax error: {m}")))?;
        match p.next() {
            None | Some((Tok::Newline | Tok::Semi, _)) => {}
            t => {
                return Err(err(
                    p.line(&t),
                    &key,
                    format!("syntax error: expected end of line, found {}", describe(t.map(|t| t.0).as_ref())),
                ))
            }
        }
        out.push(XlEntry { key, line, value });
    }
    Ok(out)
}

fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "end of file".into(),
        Some(Tok::Ident(w)) => quote(w),
        Some(Tok::Str(s)) => format!("string {}", quote(s)),
        Some(Tok::Int(i)) => format!("number {i}"),
        Some(Tok::Eq) => "'='".into(),
        Some(Tok::Open) => "'['".into(),
        Some(Tok::Close) => "']'".into(),
        Some(Tok::Comma) => "','".into(),
        Some(Tok::Semi) => "';'".into(),
        Some(Tok::Newline) => "end of line".into(),
    }
}

struct Parser<'a> {
    toks: &'a [(Tok, usize)],
    pos: usize,
    last_line: usize,
}

impl Parser<'_> {
    fn next(&mut self) -> Option<(Tok, usize)> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn skip(&mut self, f: impl Fn(&Tok) -> bool) {
        while self.toks.get(self.pos).is_some_and(|(t, _)| f(t)) {
            self.pos += 1;
        }
    }

    fn line(&self, t: &Option<(Tok, usize)>) -> usize {
        t.as_ref().map_or(self.last_line, |t| t.1)
    }

    fn value(&mut self, depth: usize) -> Result<XlValue, (usize, String)> {
        match self.next() {
            Some((Tok::Open, line)) if depth >= 8 => Err((line, "lists nested too deeply".into())),
            Some((Tok::Str(s), _)) => Ok(XlValue::Str(s)),
            Some((Tok::Int(i), _)) => Ok(XlValue::Int(i)),
            Some((Tok::Open, _)) => {
                let mut items = Vec::new();
                loop {
                    self.skip(|t| *t == Tok::Newline);
                    if self.toks.get(self.pos).is_some_and(|(t, _)| *t == Tok::Close) {
                        self.pos += 1;
                        return Ok(XlValue::List(items));
                    }
                    items.push(self.value(depth + 1)?);
                    self.skip(|t| *t == Tok::Newline);
                    match self.next() {
                        Some((Tok::Comma, _)) => {}
                        Some((Tok::Close, _)) => return Ok(XlValue::List(items)),
                        t => return Err((self.line(&t), format!("expected ',' or ']', found {}", describe(t.map(|t| t.0).as_ref())))),
                    }
                }
            }
            t => Err((self.line(&t), format!("expected a value, found {}", describe(t.map(|t| t.0).as_ref())))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::scenario::Action;
    use super::*;

    fn spec(text: &str) -> Result<DomainSpec, String> {
        parse_str(text, Path::new("d/x.cfg")).map_err(|e| e.to_string())
    }

    #[test]
    fn full_config_with_comments_and_multiline_lists() {
        let text = r#"
# hello.cfg
name = "hello"   # trailing comment
type = "pv"; kernel = 'guests/hello'
memory = 0x20
vcpus = 2 ; maxvcpus = 4
root = "/dev/xvda1"
extra = "console=hvc0 # not a comment"
on_crash = "coredump-restart"
on_reboot = 'rename-restart'
cpu_weight = 512
cap = 200
disk = [ 'file:/img,xvda,w',
         "file:/img2,xvdb,r",   # second disk
       ]
vif = [
]
"#;
        let s = spec(text).unwrap();
        assert_eq!(s.name, "hello");
        assert_eq!(s.kernel, "guests/hello");
        assert_eq!((s.memory_mib, s.vcpus), (32, 2));
        assert_eq!(s.cmdline, "root=/dev/xvda1 console=hvc0 # not a comment");
        assert_eq!((s.on_poweroff, s.on_reboot, s.on_crash), (Action::Destroy, Action::RenameRestart, Action::CoredumpRestart));
        assert_eq!((s.weight, s.cap), (Some(512), Some(200)));
        assert_eq!(s.disks, ["file:/img,xvda,w", "file:/img2,xvdb,r"]);
        assert!(s.vifs.is_empty());
        assert_eq!(s.source, Path::new("d/x.cfg"));
        assert_eq!(s.kernel_base, Path::new("d"));
    }

    #[test]
    fn raw_entries_and_escapes() {
        let e = parse("a = \"x\\\"y\\n\"\nb = [1, [\"c\"],]\n", Path::new("f")).unwrap();
        assert_eq!(e[0], XlEntry { key: "a".into(), line: 1, value: XlValue::Str("x\"y\n".into()) });
        let list = XlValue::List(vec![XlValue::Int(1), XlValue::List(vec![XlValue::Str("c".into())])]);
        assert_eq!(e[1], XlEntry { key: "b".into(), line: 2, value: list });
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let ok = "name = \"a\"\nkernel = \"k\"\n"; // lines 1-2
        let cases: &[(&str, &str)] = &[
            (&format!("{ok}memroy = 3\n"), "d/x.cfg:3: memroy: unknown key \"memroy\" (expected name, kernel,"),
            (&format!("{ok}memory = 5000\n"), "d/x.cfg:3: memory: 5000 is out of range 1..=4096"),
            (&format!("{ok}memory = \"5\"\n"), "d/x.cfg:3: memory: expected an integer, found string \"5\""),
            (&format!("{ok}memory = 8\nmaxmem = 4\n"), "d/x.cfg:4: maxmem: maxmem 4 is below memory 8"),
            (&format!("{ok}extra = \"a\"\ncmdline = \"b\"\n"), "d/x.cfg:4: cmdline: \"cmdline\" given twice"),
            (&format!("{ok}name = \"b\"\n"), "d/x.cfg:3: name: \"name\" given twice"),
            (&format!("{ok}disk = [1]\n"), "d/x.cfg:3: disk: expected a list of strings"),
            (&format!("{ok}builder = \"hvm\"\n"), "d/x.cfg:3: builder: builder \"hvm\" is not supported"),
            (&format!("{ok}config = \"x\"\n"), "d/x.cfg:3: config: unknown key"),
            (&format!("{ok}memory 5\n"), "d/x.cfg:3: memory: syntax error: expected '=', found number 5"),
            (&format!("{ok}memory =\n"), "d/x.cfg:3: memory: syntax error: expected a value, found end of line"),
            (&format!("{ok}memory = 5 6\n"), "d/x.cfg:3: memory: syntax error: expected end of line, found number 6"),
            (&format!("{ok}memory = 12M\n"), "d/x.cfg:3: memory: syntax error: bad number \"12M\""),
            (&format!("{ok}extra = \"open\n"), "d/x.cfg:3: extra: syntax error: unterminated string"),
            (&format!("{ok}extra = \"\\q\"\n"), "d/x.cfg:3: extra: syntax error: unknown escape \\q"),
            (&format!("{ok}disk = [\"a\"\n\"b\"]\n"), "d/x.cfg:4: disk: syntax error: expected ',' or ']', found string \"b\""),
            (&format!("{ok}disk = [\"a\",\n"), "d/x.cfg:3: disk: syntax error: expected a value, found end of file"),
            (&format!("{ok}= 3\n"), "d/x.cfg:3: syntax: syntax error: expected a key, found '='"),
            (&format!("{ok}vcpus = 1\n@\n"), "d/x.cfg:4: syntax: syntax error: unexpected character '@'"),
            ("kernel = \"k\"\n", "d/x.cfg:1: name: missing name"),
            ("name = \"a\"\n", "d/x.cfg:1: kernel: missing kernel"),
        ];
        for (text, want) in cases {
            let got = spec(text).unwrap_err();
            assert!(got.starts_with(want), "for {text:?}\n got: {got}\nwant: {want}...");
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        let s = "name = \"a\" # c\nx = [ 'a', [1, 0x], \"\\\"\" ]; y = 0xfffffffffffffffff\n";
        for cut in 0..=s.len() {
            let _ = spec(&s[..cut]);
        }
        let deep = format!("x = {}", "[".repeat(10_000));
        assert!(spec(&deep).unwrap_err().contains("lists nested too deeply"));
    }
}
