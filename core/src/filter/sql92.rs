//! SQL92 filters over a message's properties, RocketMQ's `MessageSelector.bySql`
//! (and the 5.x clients' `FilterExpressionType.SQL92`): `a > 5 AND region IN ('eu',
//! 'us')`. The grammar and the values are RocketMQ's (its `SelectorParser.jj`, taken
//! from ActiveMQ's JMS selectors):
//! - comparisons `=`, `<>`, `>`, `>=`, `<`, `<=`, `[NOT] BETWEEN x AND y`;
//! - `[NOT] IN ('a', 'b')`, `IS [NOT] NULL`, `[NOT] CONTAINS`, `[NOT] STARTSWITH`,
//!   `[NOT] ENDSWITH 'text'`;
//! - `AND`, `OR`, `NOT`, parentheses; keywords in any case; `--` and `/* */` comments;
//! - literals: `'text'` (`''` is a quote), whole numbers, decimals (`1.5`, `.5`,
//!   `2E3`), `TRUE`, `FALSE`, `NULL`; names `[A-Za-z_$][A-Za-z0-9_$]*`, looked up
//!   case-sensitively among the properties (system ones too: `TAGS`, `KEYS`).
//!
//! Property values are text, converted where an operator needs a number: `a > 5`
//! compares `a` as a whole number, `a > 5.0` as a decimal, and two texts compared with
//! `>` both as decimals. The logic has three values: a missing property is NULL, and
//! NULL compared is NULL, which no subscription takes (`a <> 'x'` skips messages
//! without `a`). A value that does not convert (`a > 5` where `a` is `"abc"`) makes the
//! whole expression fail for that message, which is then not taken, as in RocketMQ.
//! RocketMQ's own quirks kept, so an expression selects the same messages on both: a
//! bare property is FALSE unless missing; `NOT a = 'x'` reads as `(NOT a) = 'x'`,
//! which takes nothing (write `a <> 'x'`); and a literal that fits 32 bits compares
//! with text read as a 32-bit number, so `n > 5` fails where `n` is `"3000000000"`
//! (write `n > 5.0`, or a literal beyond 32 bits).

use super::MessageFilter;
use crate::message::properties;
use crate::{Error, Result};

/// How deeply an expression may nest (parentheses, NOT, comparisons of comparisons):
/// evaluation and drop recurse, so an unbounded depth could exhaust the stack. AND and
/// OR chains are flat and do not count.
const MAX_DEPTH: usize = 64;
/// The longest expression taken: a filter runs on every message the group reads.
pub(crate) const MAX_SQL_LEN: usize = 16 * 1024;

/// A parsed SQL92 expression.
#[derive(Debug, Clone)]
pub(crate) struct SqlFilter {
    expr: Expr,
    text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TextOp {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone)]
enum Expr {
    Lit(Lit),
    Prop(String),
    /// `-x`: a number negated; NULL for anything else.
    Neg(Box<Expr>),
    /// A property where a condition is expected: FALSE unless NULL.
    BoolCast(Box<Expr>),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Compare(Cmp, Box<Expr>, Box<Expr>),
    In {
        prop: String,
        values: Vec<String>,
        not: bool,
    },
    Text {
        op: TextOp,
        value: Box<Expr>,
        search: String,
        not: bool,
    },
}

impl Expr {
    /// Whether the expression yields a condition (RocketMQ's BooleanExpression).
    fn is_condition(&self) -> bool {
        !matches!(
            self,
            Expr::Lit(Lit::Int(_) | Lit::Float(_) | Lit::Str(_)) | Expr::Prop(_) | Expr::Neg(_)
        )
    }
}

/// A value during evaluation.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

/// An evaluation error: the message is not taken.
struct Fails;

type Eval<T> = std::result::Result<T, Fails>;

impl SqlFilter {
    pub fn parse(text: &str) -> Result<SqlFilter> {
        if text.len() > MAX_SQL_LEN {
            return Err(Error::invalid(format!(
                "SQL92 expression of {} bytes: at most {MAX_SQL_LEN}",
                text.len()
            )));
        }
        let tokens = lex(text).map_err(|e| bad(text, e))?;
        let mut p = Parser {
            tokens,
            at: 0,
            depth: 0,
        };
        let expr = p.or().map_err(|e| bad(text, e))?;
        if let Some(t) = p.peek() {
            return Err(bad(text, format!("unexpected {} at end", t.describe())));
        }
        let expr = condition(expr).map_err(|e| bad(text, e))?;
        Ok(SqlFilter {
            expr,
            text: text.trim().to_string(),
        })
    }

    /// Whether a message with these properties is taken (`get` looks one up by name).
    pub fn matches_with<'a>(&'a self, get: &dyn Fn(&str) -> Option<&'a str>) -> bool {
        matches!(eval(&self.expr, get), Ok(Val::Bool(true)))
    }
}

fn bad(text: &str, why: String) -> Error {
    Error::invalid(format!("SQL92 expression {text:?}: {why}"))
}

impl MessageFilter for SqlFilter {
    fn matches_code(&self, _code: u64) -> bool {
        true
    }

    fn matches(&self, raw: &[u8]) -> bool {
        self.matches_with(&|name| properties::value(raw, name))
    }

    fn takes_all(&self) -> bool {
        false
    }

    fn canonical(&self) -> String {
        format!("SQL92 {}", self.text)
    }

    fn is_sql(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("sql {:?}", self.text)
    }
}

// ------------------------------------------------------------------ tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(Kw),
    Name(String),
    Str(String),
    Int(i64),
    Float(f64),
    Sym(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kw {
    Not,
    And,
    Or,
    Between,
    In,
    True,
    False,
    Null,
    Is,
    Contains,
    StartsWith,
    EndsWith,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(k) => format!("{k:?}").to_uppercase(),
            Tok::Name(n) => format!("name {n:?}"),
            Tok::Str(s) => format!("text '{s}'"),
            Tok::Int(n) => format!("number {n}"),
            Tok::Float(f) => format!("number {f}"),
            Tok::Sym(s) => format!("{s:?}"),
        }
    }
}

fn keyword(word: &str) -> Option<Kw> {
    Some(match word.to_ascii_uppercase().as_str() {
        "NOT" => Kw::Not,
        "AND" => Kw::And,
        "OR" => Kw::Or,
        "BETWEEN" => Kw::Between,
        "IN" => Kw::In,
        "TRUE" => Kw::True,
        "FALSE" => Kw::False,
        "NULL" => Kw::Null,
        "IS" => Kw::Is,
        "CONTAINS" => Kw::Contains,
        "STARTSWITH" => Kw::StartsWith,
        "ENDSWITH" => Kw::EndsWith,
        _ => return None,
    })
}

fn lex(s: &str) -> std::result::Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = s[i + 2..]
                    .find("*/")
                    .ok_or_else(|| format!("comment opened at {i} is not closed"))?;
                i += 2 + end + 2;
            }
            b'\'' => {
                let mut text = String::new();
                let mut j = i + 1;
                loop {
                    let Some(k) = s[j..].find('\'') else {
                        return Err(format!("text opened at {i} is not closed"));
                    };
                    text.push_str(&s[j..j + k]);
                    j += k + 1;
                    if b.get(j) == Some(&b'\'') {
                        text.push('\'');
                        j += 1;
                    } else {
                        break;
                    }
                }
                out.push(Tok::Str(text));
                i = j;
            }
            b'0'..=b'9' | b'.' => {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let mut float = false;
                if b.get(i) == Some(&b'.') {
                    float = true;
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if matches!(b.get(i), Some(b'e' | b'E')) {
                    let mut j = i + 1;
                    if matches!(b.get(j), Some(b'+' | b'-')) {
                        j += 1;
                    }
                    if b.get(j).is_some_and(u8::is_ascii_digit) {
                        float = true;
                        i = j;
                        while i < b.len() && b[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                let digits = &s[start..i];
                if digits == "." {
                    return Err(format!("unexpected \".\" at {start}"));
                }
                if float {
                    let f: f64 = digits
                        .parse()
                        .map_err(|_| format!("bad number {digits:?} at {start}"))?;
                    out.push(Tok::Float(f));
                } else {
                    if matches!(b.get(i), Some(b'l' | b'L')) {
                        i += 1;
                    }
                    let n: i64 = digits
                        .parse()
                        .map_err(|_| format!("number {digits} at {start} is out of range"))?;
                    out.push(Tok::Int(n));
                }
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'$' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$')
                {
                    i += 1;
                }
                let word = &s[start..i];
                out.push(match keyword(word) {
                    Some(k) => Tok::Word(k),
                    None => Tok::Name(word.to_string()),
                });
            }
            _ => {
                let sym = ["<>", ">=", "<=", "=", ">", "<", "(", ")", ",", "+", "-"]
                    .into_iter()
                    .find(|sym| s[i..].starts_with(sym));
                match sym {
                    Some(sym) => {
                        out.push(Tok::Sym(sym));
                        i += sym.len();
                    }
                    None => {
                        let ch = s[i..].chars().next().unwrap_or('?');
                        return Err(format!("unexpected {ch:?} at {i}"));
                    }
                }
            }
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------ grammar

struct Parser {
    tokens: Vec<Tok>,
    at: usize,
    depth: usize,
}

type Parsed<T> = std::result::Result<T, String>;

/// `e` where a condition is expected: a property is cast (FALSE unless NULL).
fn condition(e: Expr) -> Parsed<Expr> {
    match e {
        Expr::Prop(_) => Ok(Expr::BoolCast(Box::new(e))),
        e if e.is_condition() => Ok(e),
        e => Err(format!("{} is not a condition", show(&e))),
    }
}

fn show(e: &Expr) -> String {
    match e {
        Expr::Lit(Lit::Str(s)) => format!("'{s}'"),
        Expr::Lit(Lit::Int(n)) => n.to_string(),
        Expr::Lit(Lit::Float(f)) => f.to_string(),
        Expr::Prop(p) => p.clone(),
        _ => "the expression".to_string(),
    }
}

/// Only numbers and properties take `>`, `>=`, `<`, `<=` (RocketMQ's
/// checkLessThanOperand).
fn orderable(e: &Expr) -> Parsed<()> {
    match e {
        Expr::Lit(Lit::Int(_) | Lit::Float(_)) | Expr::Prop(_) | Expr::Neg(_) => Ok(()),
        e => Err(format!(
            "{} cannot be compared with >, >=, < or <=",
            show(e)
        )),
    }
}

/// NULL cannot be compared with `=` or `<>` (use IS NULL).
fn equatable(l: &Expr, r: &Expr) -> Parsed<()> {
    if matches!(l, Expr::Lit(Lit::Null)) || matches!(r, Expr::Lit(Lit::Null)) {
        return Err("NULL cannot be compared with = or <>: use IS NULL".into());
    }
    if matches!(l, Expr::Lit(Lit::Bool(_)))
        && matches!(r, Expr::Lit(Lit::Int(_) | Lit::Float(_) | Lit::Str(_)))
    {
        return Err(format!(
            "{} cannot be compared with {}",
            "TRUE or FALSE",
            show(r)
        ));
    }
    Ok(())
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }

    fn peek2(&self) -> Option<&Tok> {
        self.tokens.get(self.at + 1)
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &Tok, what: &str) -> Parsed<()> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn unexpected(&self, what: &str) -> String {
        match self.peek() {
            Some(t) => format!("expected {what}, found {}", t.describe()),
            None => format!("expected {what}, found the end"),
        }
    }

    fn deeper(&mut self) -> Parsed<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nests more than {MAX_DEPTH} levels deep"));
        }
        Ok(())
    }

    fn or(&mut self) -> Parsed<Expr> {
        let first = self.and()?;
        if self.peek() != Some(&Tok::Word(Kw::Or)) {
            return Ok(first);
        }
        let mut all = vec![condition(first)?];
        while self.eat(&Tok::Word(Kw::Or)) {
            all.push(condition(self.and()?)?);
        }
        Ok(Expr::Or(all))
    }

    fn and(&mut self) -> Parsed<Expr> {
        let first = self.equality()?;
        if self.peek() != Some(&Tok::Word(Kw::And)) {
            return Ok(first);
        }
        let mut all = vec![condition(first)?];
        while self.eat(&Tok::Word(Kw::And)) {
            all.push(condition(self.equality()?)?);
        }
        Ok(Expr::And(all))
    }

    fn equality(&mut self) -> Parsed<Expr> {
        let mut left = self.comparison()?;
        let start = self.depth;
        loop {
            if self.eat(&Tok::Sym("=")) {
                let right = self.comparison()?;
                equatable(&left, &right)?;
                self.deeper()?;
                left = Expr::Compare(Cmp::Eq, Box::new(left), Box::new(right));
            } else if self.eat(&Tok::Sym("<>")) {
                let right = self.comparison()?;
                equatable(&left, &right)?;
                self.deeper()?;
                left = Expr::Not(Box::new(Expr::Compare(
                    Cmp::Eq,
                    Box::new(left),
                    Box::new(right),
                )));
            } else if self.eat(&Tok::Word(Kw::Is)) {
                let not = self.eat(&Tok::Word(Kw::Not));
                self.expect(&Tok::Word(Kw::Null), "NULL after IS")?;
                self.deeper()?;
                let is_null =
                    Expr::Compare(Cmp::Eq, Box::new(left), Box::new(Expr::Lit(Lit::Null)));
                left = if not {
                    Expr::Not(Box::new(is_null))
                } else {
                    is_null
                };
            } else {
                break;
            }
        }
        self.depth = start;
        Ok(left)
    }

    fn comparison(&mut self) -> Parsed<Expr> {
        let mut left = self.unary()?;
        let start = self.depth;
        loop {
            let op = match self.peek() {
                Some(Tok::Sym(">")) => Some(Cmp::Gt),
                Some(Tok::Sym(">=")) => Some(Cmp::Ge),
                Some(Tok::Sym("<")) => Some(Cmp::Lt),
                Some(Tok::Sym("<=")) => Some(Cmp::Le),
                _ => None,
            };
            if let Some(op) = op {
                self.at += 1;
                let right = self.unary()?;
                orderable(&left)?;
                orderable(&right)?;
                self.deeper()?;
                left = Expr::Compare(op, Box::new(left), Box::new(right));
                continue;
            }
            // NOT here only before CONTAINS, STARTSWITH, ENDSWITH, BETWEEN and IN.
            let not = self.peek() == Some(&Tok::Word(Kw::Not))
                && matches!(
                    self.peek2(),
                    Some(Tok::Word(
                        Kw::Contains | Kw::StartsWith | Kw::EndsWith | Kw::Between | Kw::In
                    ))
                );
            if not {
                self.at += 1;
            }
            match self.peek() {
                Some(Tok::Word(k @ (Kw::Contains | Kw::StartsWith | Kw::EndsWith))) => {
                    let op = match k {
                        Kw::Contains => TextOp::Contains,
                        Kw::StartsWith => TextOp::StartsWith,
                        _ => TextOp::EndsWith,
                    };
                    self.at += 1;
                    let search = self.text("text in quotes")?;
                    self.deeper()?;
                    left = Expr::Text {
                        op,
                        value: Box::new(left),
                        search,
                        not,
                    };
                }
                Some(Tok::Word(Kw::Between)) => {
                    self.at += 1;
                    let low = self.unary()?;
                    self.expect(&Tok::Word(Kw::And), "AND in BETWEEN")?;
                    let high = self.unary()?;
                    for e in [&left, &low, &high] {
                        orderable(e)?;
                    }
                    if let (Some(l), Some(h)) = (number(&low), number(&high)) {
                        if l > h {
                            return Err(format!(
                                "BETWEEN {} AND {}: the first must not exceed the second",
                                show(&low),
                                show(&high)
                            ));
                        }
                    }
                    self.deeper()?;
                    self.deeper()?;
                    left = if not {
                        Expr::Or(vec![
                            Expr::Compare(Cmp::Lt, Box::new(left.clone()), Box::new(low)),
                            Expr::Compare(Cmp::Gt, Box::new(left), Box::new(high)),
                        ])
                    } else {
                        Expr::And(vec![
                            Expr::Compare(Cmp::Ge, Box::new(left.clone()), Box::new(low)),
                            Expr::Compare(Cmp::Le, Box::new(left), Box::new(high)),
                        ])
                    };
                }
                Some(Tok::Word(Kw::In)) => {
                    self.at += 1;
                    let Expr::Prop(prop) = left else {
                        return Err(format!(
                            "IN needs a property on its left, not {}",
                            show(&left)
                        ));
                    };
                    self.expect(&Tok::Sym("("), "( after IN")?;
                    let mut values = vec![self.text("text in quotes")?];
                    while self.eat(&Tok::Sym(",")) {
                        values.push(self.text("text in quotes")?);
                    }
                    self.expect(&Tok::Sym(")"), ") closing IN")?;
                    self.deeper()?;
                    left = Expr::In { prop, values, not };
                }
                _ => break,
            }
        }
        self.depth = start;
        Ok(left)
    }

    fn text(&mut self, what: &str) -> Parsed<String> {
        match self.peek() {
            Some(Tok::Str(s)) => {
                let s = s.clone();
                self.at += 1;
                Ok(s)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn unary(&mut self) -> Parsed<Expr> {
        self.deeper()?;
        let e = match self.peek() {
            Some(Tok::Sym("+")) => {
                self.at += 1;
                self.unary()?
            }
            Some(Tok::Sym("-")) => {
                self.at += 1;
                match self.unary()? {
                    Expr::Lit(Lit::Int(n)) => Expr::Lit(Lit::Int(n.wrapping_neg())),
                    Expr::Lit(Lit::Float(f)) => Expr::Lit(Lit::Float(-f)),
                    e => Expr::Neg(Box::new(e)),
                }
            }
            Some(Tok::Word(Kw::Not)) => {
                self.at += 1;
                Expr::Not(Box::new(condition(self.unary()?)?))
            }
            _ => self.primary()?,
        };
        self.depth -= 1;
        Ok(e)
    }

    fn primary(&mut self) -> Parsed<Expr> {
        let Some(t) = self.peek().cloned() else {
            return Err(self.unexpected("a value"));
        };
        self.at += 1;
        Ok(match t {
            Tok::Str(s) => Expr::Lit(Lit::Str(s)),
            Tok::Int(n) => Expr::Lit(Lit::Int(n)),
            Tok::Float(f) => Expr::Lit(Lit::Float(f)),
            Tok::Word(Kw::True) => Expr::Lit(Lit::Bool(true)),
            Tok::Word(Kw::False) => Expr::Lit(Lit::Bool(false)),
            Tok::Word(Kw::Null) => Expr::Lit(Lit::Null),
            Tok::Name(n) => Expr::Prop(n),
            Tok::Sym("(") => {
                let e = self.or()?;
                self.expect(&Tok::Sym(")"), ")")?;
                e
            }
            _ => {
                self.at -= 1;
                return Err(self.unexpected("a value"));
            }
        })
    }
}

fn number(e: &Expr) -> Option<f64> {
    match e {
        Expr::Lit(Lit::Int(n)) => Some(*n as f64),
        Expr::Lit(Lit::Float(f)) => Some(*f),
        _ => None,
    }
}

// ------------------------------------------------------------------ evaluation

fn eval<'a>(e: &'a Expr, get: &dyn Fn(&str) -> Option<&'a str>) -> Eval<Val<'a>> {
    Ok(match e {
        Expr::Lit(l) => match l {
            Lit::Null => Val::Null,
            Lit::Bool(b) => Val::Bool(*b),
            Lit::Int(n) => Val::Int(*n),
            Lit::Float(f) => Val::Float(*f),
            Lit::Str(s) => Val::Str(s),
        },
        Expr::Prop(name) => get(name).map_or(Val::Null, Val::Str),
        Expr::Neg(e) => match eval(e, get)? {
            Val::Int(n) => Val::Int(n.wrapping_neg()),
            Val::Float(f) => Val::Float(-f),
            _ => Val::Null,
        },
        Expr::BoolCast(e) => match eval(e, get)? {
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(b),
            _ => Val::Bool(false),
        },
        Expr::Not(e) => match truth(eval(e, get)?) {
            Some(b) => Val::Bool(!b),
            None => Val::Null,
        },
        Expr::And(all) => chain(all, false, get)?,
        Expr::Or(all) => chain(all, true, get)?,
        Expr::Compare(Cmp::Eq, l, r) => {
            let (l, r) = (eval(l, get)?, eval(r, get)?);
            match (l, r) {
                (Val::Null, Val::Null) => Val::Bool(true),
                (Val::Null, _) => Val::Null,
                (_, Val::Null) => Val::Bool(false),
                (l, r) => Val::Bool(order(l, r)? == std::cmp::Ordering::Equal),
            }
        }
        Expr::Compare(op, l, r) => {
            let (l, r) = (eval(l, get)?, eval(r, get)?);
            let ord = match (l, r) {
                (Val::Null, _) | (_, Val::Null) => return Ok(Val::Null),
                // Two texts compare as decimals, or not at all.
                (Val::Str(a), Val::Str(b)) => {
                    order(Val::Float(decimal(a)?), Val::Float(decimal(b)?))?
                }
                (l, r) => order(l, r)?,
            };
            use std::cmp::Ordering::*;
            Val::Bool(match op {
                Cmp::Gt => ord == Greater,
                Cmp::Ge => ord != Less,
                Cmp::Lt => ord == Less,
                Cmp::Le => ord != Greater,
                Cmp::Eq => ord == Equal,
            })
        }
        Expr::In { prop, values, not } => match get(prop) {
            None => Val::Null,
            Some(v) => Val::Bool(values.iter().any(|x| x == v) != *not),
        },
        Expr::Text {
            op,
            value,
            search,
            not,
        } => {
            // As RocketMQ: an empty search, a missing value or one that is not text
            // is FALSE, with NOT too.
            let Val::Str(v) = eval(value, get)? else {
                return Ok(Val::Bool(false));
            };
            if search.is_empty() {
                return Ok(Val::Bool(false));
            }
            let found = match op {
                TextOp::Contains => v.contains(search.as_str()),
                TextOp::StartsWith => v.starts_with(search.as_str()),
                TextOp::EndsWith => v.ends_with(search.as_str()),
            };
            Val::Bool(found != *not)
        }
    })
}

/// An AND (`decisive` false) or OR (`decisive` true) of `all`, left to right: the
/// first operand that is `decisive` decides; else NULL if one was NULL, else the
/// other truth value.
fn chain<'a>(
    all: &'a [Expr],
    decisive: bool,
    get: &dyn Fn(&str) -> Option<&'a str>,
) -> Eval<Val<'a>> {
    let mut unknown = false;
    for e in all {
        match truth(eval(e, get)?) {
            Some(b) if b == decisive => return Ok(Val::Bool(decisive)),
            Some(_) => {}
            None => unknown = true,
        }
    }
    Ok(if unknown {
        Val::Null
    } else {
        Val::Bool(!decisive)
    })
}

fn truth(v: Val<'_>) -> Option<bool> {
    match v {
        Val::Bool(b) => Some(b),
        _ => None,
    }
}

/// Text as a whole number compared with the literal `n` (a sign and digits): a 32-bit
/// one when `n` fits 32 bits, as Java reads a literal that fits as an `Integer` and the
/// text with `Integer.valueOf`, else a 64-bit one (`Long.valueOf`).
fn whole(s: &str, n: i64) -> Eval<i64> {
    if i32::try_from(n).is_ok() {
        s.parse::<i32>().map(i64::from).map_err(|_| Fails)
    } else {
        s.parse().map_err(|_| Fails)
    }
}

/// Text as a decimal (Java's `Double.valueOf`: surrounding blanks and a `d`/`f`
/// suffix allowed).
fn decimal(s: &str) -> Eval<f64> {
    let t = s.trim_matches(|c: char| c <= ' ');
    let t = t
        .strip_suffix(['d', 'D', 'f', 'F'])
        .filter(|t| !t.is_empty())
        .unwrap_or(t);
    if t.starts_with(|c: char| c.is_ascii_alphabetic()) && !matches!(t, "NaN" | "Infinity") {
        return Err(Fails);
    }
    t.parse().map_err(|_| Fails)
}

/// Orders two non-NULL values as RocketMQ's ComparisonExpression does, converting
/// text to the other side's type; values of no common type are unequal.
fn order(l: Val<'_>, r: Val<'_>) -> Eval<std::cmp::Ordering> {
    use std::cmp::Ordering::Less;
    let f = |a: f64, b: f64| a.partial_cmp(&b).unwrap_or(Less);
    Ok(match (l, r) {
        (Val::Int(a), Val::Int(b)) => a.cmp(&b),
        (Val::Int(a), Val::Float(b)) => f(a as f64, b),
        (Val::Float(a), Val::Int(b)) => f(a, b as f64),
        (Val::Float(a), Val::Float(b)) => f(a, b),
        (Val::Str(a), Val::Str(b)) => a.cmp(b),
        (Val::Bool(a), Val::Bool(b)) => a.cmp(&b),
        (Val::Str(a), Val::Int(b)) => whole(a, b)?.cmp(&b),
        (Val::Int(a), Val::Str(b)) => a.cmp(&whole(b, a)?),
        (Val::Str(a), Val::Float(b)) => f(decimal(a)?, b),
        (Val::Float(a), Val::Str(b)) => f(a, decimal(b)?),
        (Val::Str(a), Val::Bool(b)) => a.eq_ignore_ascii_case("true").cmp(&b),
        // Java's comparison fails here (a cast of the boolean to text).
        (Val::Bool(_), Val::Str(_)) => return Err(Fails),
        (Val::Null, _) | (_, Val::Null) => return Err(Fails),
        // A number and a condition: unequal (Java's -1).
        _ => Less,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn taken(expr: &str, props: &[(&str, &str)]) -> bool {
        let map: HashMap<&str, &str> = props.iter().copied().collect();
        let f = SqlFilter::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let get = |name: &str| map.get(name).copied();
        f.matches_with(&get)
    }

    fn refused(expr: &str) -> String {
        match SqlFilter::parse(expr) {
            Ok(f) => panic!("{expr} parsed: {f:?}"),
            Err(e) => {
                assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
                e.to_string()
            }
        }
    }

    #[test]
    fn numbers_compare_as_numbers() {
        let a = [("a", "10")];
        assert!(taken("a > 5", &a));
        assert!(taken("a >= 10 AND a <= 10", &a));
        assert!(!taken("a < 5", &a));
        assert!(taken("a = 10", &a));
        assert!(taken("a <> 11", &a));
        assert!(taken("a BETWEEN 0 AND 10", &a));
        assert!(!taken("a NOT BETWEEN 0 AND 10", &a));
        assert!(taken("a NOT BETWEEN 11 AND 20", &a));
        assert!(taken("a > 9.5", &a));
        assert!(taken("a > -5", &a));
        assert!(taken("-a < 0 OR a = 10", &a), "a negated property is NULL");
        assert!(taken("a = 10L", &a));
        assert!(taken("a > 1E0", &a));
        // Two properties compare as decimals.
        assert!(taken("a > b", &[("a", "10"), ("b", "9")]));
        assert!(taken("a < b", &[("a", "10"), ("b", "10.5")]));
        assert!(!taken("a > b OR TRUE", &[("a", "10"), ("b", "x")]));
        // A decimal against a whole number fails the whole expression.
        assert!(!taken("b > 1 OR a = 10", &[("a", "10"), ("b", "1.5")]));
        assert!(taken("b > 1.0", &[("b", "1.5")]));
        assert!(taken("b > 1.0", &[("b", " 1.5d ")]));
        // A value that is no number fails the whole expression, even past an OR.
        assert!(!taken("a > 5 OR TRUE", &[("a", "abc")]));
        assert!(!taken("a = 5 OR TRUE", &[("a", "abc")]));
        assert!(
            taken("TRUE OR a > 5", &[("a", "abc")]),
            "OR stops at the first TRUE"
        );
    }

    #[test]
    fn text_equality_and_lists() {
        let p = [("region", "eu"), ("TAGS", "paid")];
        assert!(taken("region = 'eu'", &p));
        assert!(!taken("region = 'EU'", &p), "values are case-sensitive");
        assert!(taken("region IN ('us', 'eu')", &p));
        assert!(!taken("region NOT IN ('us', 'eu')", &p));
        assert!(taken("TAGS = 'paid' and region <> 'us'", &p));
        assert!(taken("region = 'it''s'", &[("region", "it's")]));
        assert!(taken("region CONTAINS 'u'", &p));
        assert!(taken("region STARTSWITH 'e' AND region ENDSWITH 'u'", &p));
        assert!(taken("region NOT CONTAINS 'x'", &p));
        assert!(!taken("region CONTAINS ''", &p));
        assert!(taken("flag = TRUE", &[("flag", "TRUE")]));
        // A literal that fits 32 bits reads the text as a 32-bit number (Java's
        // Integer); a larger one as a 64-bit one.
        let big = [("n", "3000000000")];
        assert!(!taken("n > 5", &big) && !taken("n > 5 OR TRUE", &big));
        assert!(taken("n > 2999999999", &big) && taken("n > 5.0", &big));
        assert!(taken("n = 10", &[("n", "010")]) && !taken("n = '10'", &[("n", "010")]));
        assert!(taken("flag = FALSE", &[("flag", "no")]));
    }

    #[test]
    fn missing_properties_are_null() {
        let none: [(&str, &str); 0] = [];
        assert!(taken("a IS NULL", &none));
        assert!(!taken("a IS NOT NULL", &none));
        assert!(!taken("a = 'x'", &none));
        assert!(
            !taken("a <> 'x'", &none),
            "NULL compared is NULL, NOT NULL too"
        );
        assert!(!taken("NOT (a > 1)", &none));
        assert!(!taken("a IN ('x')", &none));
        assert!(!taken("a NOT IN ('x')", &none));
        assert!(!taken("a NOT CONTAINS 'x'", &none));
        assert!(taken("a > 1 OR b = 'y'", &[("b", "y")]));
        assert!(!taken("a > 1 AND b = 'y'", &[("b", "y")]));
        assert!(!taken("a > 1 AND b = 'z'", &[("b", "y")]));
    }

    #[test]
    fn rocketmq_quirks_are_kept() {
        // A bare property is FALSE unless missing.
        assert!(!taken("a", &[("a", "true")]));
        assert!(taken("NOT a", &[("a", "true")]));
        assert!(!taken("NOT a", &[]));
        // NOT binds tighter than =: (NOT a) = 'x' fails.
        assert!(!taken("NOT a = 'x'", &[("a", "y")]));
        assert!(taken("NOT (a = 'x')", &[("a", "y")]));
    }

    #[test]
    fn syntax() {
        assert!(taken(
            "  a>1and(b='x'or b='y')  ",
            &[("a", "2"), ("b", "y")]
        ));
        assert!(taken("A = 1 -- a comment\n or a = 2", &[("a", "2")]));
        assert!(taken("/* why */ a = 2", &[("a", "2")]));
        assert!(taken("$x_1 = 'v'", &[("$x_1", "v")]));
        assert!(taken("a in ('1') AnD a between 1 aNd 2", &[("a", "1")]));
        assert!(taken("TRUE", &[]));
        assert!(!taken("FALSE OR NULL", &[]));
    }

    #[test]
    fn bad_expressions_are_invalid_arguments() {
        for expr in [
            "",
            "   ",
            "a >",
            "a = 'x",
            "a = NULL",
            "NULL = a",
            "a > 'x'",
            "a > TRUE",
            "(a > 1) > 2",
            "a BETWEEN 5 AND 1",
            "a IN (1, 2)",
            "'x' IN ('x')",
            "a IN ()",
            "5",
            "'x'",
            "a = 1 b = 2",
            "(a = 1",
            "a = 1)",
            "a == 1",
            "a != 1",
            "a = 99999999999999999999",
            "a CONTAINS b",
            "/* open",
            "a = 1 AND",
            "TRUE = 5",
            "a = .",
            "a = 1x",
            "a = 1 AND é = 2",
        ] {
            refused(expr);
        }
        let deep = format!("{}a = 1{}", "(".repeat(200), ")".repeat(200));
        assert!(refused(&deep).contains("levels deep"));
        let deep_not = format!("{}a", "NOT ".repeat(200));
        assert!(refused(&deep_not).contains("levels deep"));
        assert!(refused(&"a".repeat(MAX_SQL_LEN + 1)).contains("at most"));
        // Long flat chains are fine.
        let chain = vec!["a = 1"; 500].join(" OR ");
        assert!(taken(&chain, &[("a", "1")]));
    }

    #[test]
    fn the_encoded_properties_are_read() {
        let mut raw = Vec::new();
        properties::push(&mut raw, "TAGS", "paid");
        properties::push(&mut raw, "amount", "250");
        let f = SqlFilter::parse("TAGS = 'paid' AND amount >= 100").unwrap();
        assert!(f.matches(&raw) && f.matches_code(0) && !f.takes_all());
        assert!(!SqlFilter::parse("amount > 250").unwrap().matches(&raw));
        assert_eq!(f.canonical(), "SQL92 TAGS = 'paid' AND amount >= 100");
    }
}
