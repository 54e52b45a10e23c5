//! A constant-memory splitter for one huge JSON document (design 4.2): it hands out the
//! elements of chosen member arrays of the top-level object (`locations`, `features`, ...) or
//! of a top-level array, one at a time, as bytes in a reused buffer, each with its byte offset
//! and line. Other members are skipped without being parsed or kept. Elements are then parsed
//! with `serde_json::from_slice` (exact, and faster than a reader-based parse).
//!
//! `serde_json::StreamDeserializer` reads a sequence of top-level values only; a 2 GB
//! `{"locations":[...]}` is one value, hence this byte state machine.

use crate::item::{Entry, FormatError, Position, Problem, MAX_ELEMENT_BYTES};
use std::collections::VecDeque;
use std::io::BufRead;

/// The longest member name compared; longer names are skipped (none of ours is near it).
const MAX_KEY_BYTES: usize = 64;

/// One element of a streamed array.
#[derive(Debug)]
pub struct Element<'a> {
    /// Where the element's first byte is.
    pub at: Position,
    /// The member it belongs to (`""`: a top-level array, or the whole document, see
    /// [`JsonStream::whole_document`]).
    pub member: &'static str,
    /// Its index in that array (0 for a whole document).
    pub index: u64,
    /// The element's JSON text.
    pub bytes: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Before the top-level value.
    Start,
    /// In the top-level object, before a key or the closing brace.
    Object { first: bool },
    /// In an array being streamed, before an element or the closing bracket.
    Array {
        member: &'static str,
        top: bool,
        first: bool,
    },
    /// The document ended (trailing whitespace checked).
    Done,
}

/// The splitter. Construct with [`JsonStream::new`], call [`JsonStream::next_element`] until
/// `Ok(None)`.
pub struct JsonStream<R> {
    input: R,
    members: &'static [&'static str],
    state: State,
    offset: u64,
    line: u64,
    element: Vec<u8>,
    index: u64,
    limit: usize,
    /// The whole top-level object while no streamed member was entered (GeoJSON: a bare
    /// Feature or geometry); `None` when not wanted or given up.
    capture: Option<Vec<u8>>,
    capture_overflowed: bool,
    entered_member: bool,
}

/// What to do with the bytes a scan consumes.
#[derive(Clone, Copy, PartialEq)]
enum Sink {
    Drop,
    Element,
}

impl<R: BufRead> JsonStream<R> {
    /// Streams the elements of the top-level object's members named in `members`, or of a
    /// top-level array.
    pub fn new(input: R, members: &'static [&'static str]) -> JsonStream<R> {
        JsonStream {
            input,
            members,
            state: State::Start,
            offset: 0,
            line: 1,
            element: Vec::new(),
            index: 0,
            limit: MAX_ELEMENT_BYTES,
            capture: None,
            capture_overflowed: false,
            entered_member: false,
        }
    }

    /// Also hands out the whole top-level object as one element (member `""`) when it has
    /// none of the members (a bare GeoJSON Feature or geometry); it is kept in memory up to
    /// the element limit.
    pub fn whole_document(mut self) -> JsonStream<R> {
        self.capture = Some(Vec::new());
        self
    }

    /// The element size limit (default [`MAX_ELEMENT_BYTES`]); for tests.
    pub fn with_limit(mut self, limit: usize) -> JsonStream<R> {
        self.limit = limit;
        self
    }

    /// Where the reader is now.
    pub fn position(&self) -> Position {
        Position {
            offset: self.offset,
            line: self.line,
        }
    }

    /// The capacity of the element buffer (for the constant-memory test).
    pub fn buffer_capacity(&self) -> usize {
        self.element.capacity() + self.capture.as_ref().map_or(0, Vec::capacity)
    }

    /// The next element, `Ok(None)` at the end of the document. After an error the stream
    /// is finished (returns `Ok(None)`).
    pub fn next_element(&mut self) -> Result<Option<Element<'_>>, FormatError> {
        match self.advance() {
            Ok(Some((at, member, index))) => Ok(Some(Element {
                at,
                member,
                index,
                bytes: &self.element,
            })),
            Ok(None) => Ok(None),
            Err(e) => {
                self.state = State::Done;
                Err(e)
            }
        }
    }

    /// Moves to the next element and leaves it in `self.element`.
    fn advance(&mut self) -> Result<Option<(Position, &'static str, u64)>, FormatError> {
        loop {
            self.skip_whitespace();
            match self.state {
                State::Done => return Ok(None),
                State::Start => self.start()?,
                State::Object { first } => {
                    if let Some(found) = self.object_step(first)? {
                        return Ok(Some(found));
                    }
                }
                State::Array { member, top, first } => {
                    if let Some(found) = self.array_step(member, top, first)? {
                        return Ok(Some(found));
                    }
                }
            }
        }
    }

    fn start(&mut self) -> Result<(), FormatError> {
        self.skip_bom()?;
        self.skip_whitespace();
        match self.peek()? {
            Some(b'{') => {
                self.bump(1)?;
                self.state = State::Object { first: true };
            }
            Some(b'[') => {
                self.capture = None;
                self.bump(1)?;
                self.state = State::Array {
                    member: "",
                    top: true,
                    first: true,
                };
            }
            Some(_) => return Err(self.syntax("expected a JSON object or array")),
            None => return Err(self.truncated("empty input, expected a JSON document")),
        }
        Ok(())
    }

    /// One step in the top-level object: a member streamed (enters its array), skipped, or
    /// the end of the object. Returns the whole document when it is the element.
    fn object_step(
        &mut self,
        first: bool,
    ) -> Result<Option<(Position, &'static str, u64)>, FormatError> {
        match self.peek()? {
            Some(b'}') => {
                self.bump(1)?;
                self.state = State::Done;
                if self.capture_overflowed && !self.entered_member {
                    return Err(FormatError::TooLarge {
                        at: Position::START,
                        limit: self.limit,
                    });
                }
                self.finish_document()?;
                return Ok(self.whole_element());
            }
            Some(b',') if !first => {
                self.bump(1)?;
                self.skip_whitespace();
            }
            Some(_) if first => {}
            Some(_) => return Err(self.syntax("expected ',' or '}' in the top-level object")),
            None => return Err(self.truncated("inside the top-level object")),
        }
        self.state = State::Object { first: false };
        let key = self.read_key()?;
        self.skip_whitespace();
        match self.peek()? {
            Some(b':') => self.bump(1)?,
            Some(_) => return Err(self.syntax("expected ':' after a member name")),
            None => return Err(self.truncated("after a member name")),
        }
        self.skip_whitespace();
        let member = self.members.iter().find(|m| m.as_bytes() == key);
        match (member, self.peek()?) {
            (Some(member), Some(b'[')) => {
                self.entered_member = true;
                self.capture = None;
                self.bump(1)?;
                self.index = 0;
                self.state = State::Array {
                    member,
                    top: false,
                    first: true,
                };
            }
            _ => {
                let at = self.position();
                self.scan_value(Sink::Drop, at, "a skipped member")?;
            }
        }
        Ok(None)
    }

    /// One step in a streamed array: the next element, or the end of the array.
    fn array_step(
        &mut self,
        member: &'static str,
        top: bool,
        first: bool,
    ) -> Result<Option<(Position, &'static str, u64)>, FormatError> {
        match self.peek()? {
            Some(b']') => {
                self.bump(1)?;
                if top {
                    self.state = State::Done;
                    self.finish_document()?;
                } else {
                    self.state = State::Object { first: false };
                }
                return Ok(None);
            }
            Some(b',') if !first => {
                self.bump(1)?;
                self.skip_whitespace();
            }
            Some(_) if first => {}
            Some(_) => return Err(self.syntax(&format!("expected ',' or ']' in {}", name(member)))),
            None => {
                return Err(self.truncated(&format!("before the closing ']' of {}", name(member))))
            }
        }
        self.state = State::Array {
            member,
            top,
            first: false,
        };
        let at = self.position();
        match self.peek()? {
            Some(b']') => return Err(self.syntax(&format!("trailing ',' in {}", name(member)))),
            None => {
                return Err(self.truncated(&format!("before the closing ']' of {}", name(member))))
            }
            Some(_) => {}
        }
        self.element.clear();
        let context = format!("inside {}[{}]", name(member), self.index);
        self.scan_value(Sink::Element, at, &context)?;
        let index = self.index;
        self.index += 1;
        Ok(Some((at, member, index)))
    }

    /// After the top-level value: only whitespace may follow.
    fn finish_document(&mut self) -> Result<(), FormatError> {
        self.skip_whitespace();
        match self.peek()? {
            None => Ok(()),
            Some(_) => Err(self.syntax("unexpected text after the JSON document")),
        }
    }

    /// The captured whole document as the element, when wanted and no member was streamed.
    fn whole_element(&mut self) -> Option<(Position, &'static str, u64)> {
        let capture = self.capture.take()?;
        if self.entered_member {
            return None;
        }
        self.element = capture;
        Some((Position::START, "", 0))
    }

    fn peek(&mut self) -> Result<Option<u8>, FormatError> {
        loop {
            match self.input.fill_buf() {
                Ok(buf) => return Ok(buf.first().copied()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FormatError::Io(e)),
            }
        }
    }

    /// Consumes `n` bytes already seen by `peek` (structural bytes: no newline among them).
    fn bump(&mut self, n: usize) -> Result<(), FormatError> {
        let buf = self.input.fill_buf()?;
        let n = n.min(buf.len());
        if let Some(capture) = self.capture.as_mut() {
            capture.extend_from_slice(&buf[..n]);
        }
        self.input.consume(n);
        self.offset += n as u64;
        self.check_capture();
        Ok(())
    }

    fn check_capture(&mut self) {
        if self.capture.as_ref().is_some_and(|c| c.len() > self.limit) {
            self.capture = None;
            self.capture_overflowed = true;
        }
    }

    fn skip_bom(&mut self) -> Result<(), FormatError> {
        let buf = self.input.fill_buf()?;
        if buf.starts_with(b"\xEF\xBB\xBF") {
            self.input.consume(3);
            self.offset += 3;
        }
        Ok(())
    }

    /// Skips JSON whitespace (a read error is left for the next `peek`).
    fn skip_whitespace(&mut self) {
        loop {
            let Ok(buf) = self.input.fill_buf() else {
                return;
            };
            if buf.is_empty() {
                return;
            }
            let n = buf
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(buf.len());
            self.line += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            if let Some(capture) = self.capture.as_mut() {
                capture.extend_from_slice(&buf[..n]);
            }
            self.input.consume(n);
            self.offset += n as u64;
            self.check_capture();
            if n == 0 {
                return;
            }
        }
    }

    /// Reads a member name (a JSON string) and returns its raw bytes (first
    /// [`MAX_KEY_BYTES`]).
    fn read_key(&mut self) -> Result<Vec<u8>, FormatError> {
        match self.peek()? {
            Some(b'"') => {}
            Some(_) => return Err(self.syntax("expected a member name")),
            None => return Err(self.truncated("inside the top-level object")),
        }
        let at = self.position();
        self.element.clear();
        self.scan_value(Sink::Element, at, "inside a member name")?;
        let raw = self
            .element
            .get(1..self.element.len().saturating_sub(1))
            .unwrap_or_default();
        Ok(raw[..raw.len().min(MAX_KEY_BYTES)].to_vec())
    }

    /// Consumes one complete JSON value (object, array, string or scalar), copying it to the
    /// element buffer or dropping it. Strings and brackets are tracked, nothing else parsed.
    fn scan_value(&mut self, sink: Sink, at: Position, context: &str) -> Result<(), FormatError> {
        let mut scan = Scan::default();
        loop {
            let buf = match self.input.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(FormatError::Io(e)),
            };
            if buf.is_empty() {
                if scan.scalar && scan.depth == 0 && !scan.in_string {
                    return Ok(());
                }
                return Err(self.truncated(&format!("{context}, which began at {at}")));
            }
            let (n, done) = scan.feed(buf);
            let newlines = buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            if sink == Sink::Element {
                if self.element.len() + n > self.limit {
                    return Err(FormatError::TooLarge {
                        at,
                        limit: self.limit,
                    });
                }
                self.element.extend_from_slice(&buf[..n]);
            }
            if let Some(capture) = self.capture.as_mut() {
                capture.extend_from_slice(&buf[..n]);
            }
            self.input.consume(n);
            self.offset += n as u64;
            self.line += newlines;
            self.check_capture();
            if done {
                return Ok(());
            }
        }
    }

    fn truncated(&self, context: &str) -> FormatError {
        FormatError::Truncated {
            at: self.position(),
            context: context.to_owned(),
        }
    }

    fn syntax(&self, reason: &str) -> FormatError {
        FormatError::Syntax {
            at: self.position(),
            reason: reason.to_owned(),
        }
    }
}

fn name(member: &str) -> &str {
    if member.is_empty() {
        "the top-level array"
    } else {
        member
    }
}

/// The state of scanning one value across buffer refills.
#[derive(Default)]
struct Scan {
    started: bool,
    scalar: bool,
    depth: u64,
    in_string: bool,
    escape: bool,
}

impl Scan {
    /// Scans `buf`; returns how many bytes belong to the value and whether it ended.
    fn feed(&mut self, buf: &[u8]) -> (usize, bool) {
        for (i, &b) in buf.iter().enumerate() {
            if !self.started {
                self.started = true;
                match b {
                    b'{' | b'[' => self.depth = 1,
                    b'"' => self.in_string = true,
                    _ => self.scalar = true,
                }
                continue;
            }
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if self.depth == 0 {
                        return (i + 1, true);
                    }
                }
                continue;
            }
            if self.scalar {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    return (i, true);
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return (i + 1, true);
                    }
                }
                _ => {}
            }
        }
        (buf.len(), false)
    }
}

/// Turns one streamed element into entries (points, problems), given the time now.
pub(crate) type Convert = fn(&Element<'_>, i64, &mut VecDeque<Entry>) -> Result<(), FormatError>;

/// A reader over a [`JsonStream`]: each element goes through a [`Convert`].
pub(crate) struct ElementReader<R> {
    stream: JsonStream<R>,
    convert: Convert,
    queue: VecDeque<Entry>,
    now: i64,
    done: bool,
}

impl<R: BufRead> ElementReader<R> {
    pub(crate) fn new(stream: JsonStream<R>, convert: Convert) -> ElementReader<R> {
        ElementReader {
            stream,
            convert,
            queue: VecDeque::new(),
            now: crate::item::now(),
            done: false,
        }
    }
}

impl<R: BufRead> Iterator for ElementReader<R> {
    type Item = Result<Entry, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(entry) = self.queue.pop_front() {
                return Some(Ok(entry));
            }
            if self.done {
                return None;
            }
            let result = match self.stream.next_element() {
                Ok(Some(element)) => (self.convert)(&element, self.now, &mut self.queue),
                Ok(None) => {
                    self.done = true;
                    Ok(())
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                self.done = true;
                self.queue.clear();
                return Some(Err(e));
            }
        }
    }
}

/// Parses an element into `T`. Malformed JSON stops the read (it is structural); JSON of an
/// unexpected shape (a string where a number belongs) is a [`Problem`] for that element.
pub(crate) fn parse<'a, T: serde::Deserialize<'a>>(
    element: &Element<'a>,
) -> Result<Result<T, Problem>, FormatError> {
    match serde_json::from_slice::<T>(element.bytes) {
        Ok(value) => Ok(Ok(value)),
        // Not serde's message: it quotes the offending value, and reasons are counting keys
        // (one per distinct text would grow with the input).
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            Ok(Err(Problem::new(element.at, "unexpected shape")))
        }
        Err(e) => Err(FormatError::Syntax {
            at: element.at,
            reason: format!(
                "invalid JSON in {}[{}] (its line {}, column {}): {}",
                name(element.member),
                element.index,
                e.line(),
                e.column(),
                e.to_string().split(" at line ").next().unwrap_or_default()
            ),
        }),
    }
}
