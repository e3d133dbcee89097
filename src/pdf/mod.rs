//! Text with positions from PDF pages: our own content-stream interpreter on lopdf's
//! object model.
//!
//! lopdf parses the file, decrypts it, decodes stream filters and parses ToUnicode
//! CMaps; what a page shows is worked out here. Every page's content stream (and the
//! Form XObjects it draws) is run with the graphics state (`cm`, `q`/`Q`) and the text
//! state (`Tm`, `Td`, `TD`, `T*`, `Tc`, `Tw`, `Tz`, `TL`, `Ts`, `Tf`, `Tj`, `TJ`, `'`,
//! `"`), giving each glyph its Unicode text, its position and its size on the page as it
//! is displayed (`/Rotate` applied). Glyphs are then grouped into words by the gaps
//! between them, words into lines by baseline, and lines ordered top to bottom, whatever
//! order the content stream drew them in.
//!
//! Unicode for a glyph comes from the font's ToUnicode CMap, else from its encoding (the
//! base encoding with `/Differences` glyph names, read through the Adobe Glyph List). A
//! glyph with neither is never guessed: its line records the font, and the reader fails
//! the unit unless the line is skipped.

mod metrics;

use std::collections::HashMap;

use lopdf::content::Content;
use lopdf::{Dictionary, Document, Encoding, Object};

/// Largest decompressed size of one page's content (and of a font's CMap).
const MAX_STREAM_BYTES: usize = 64 << 20;
/// How deep Form XObjects may nest.
const MAX_FORM_DEPTH: usize = 12;

/// A line of text as it is displayed.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Its words joined by single spaces.
    pub text: String,
    /// Left edge and baseline, in points from the page's bottom left.
    pub x: f64,
    pub y: f64,
    /// A font whose glyphs on this line have no Unicode (the line's text holds U+FFFD).
    pub unmapped: Option<String>,
}

/// One page's lines, top to bottom.
#[derive(Debug, Clone)]
pub struct Page {
    /// 1-based.
    pub number: u32,
    pub lines: Vec<Line>,
}

/// Why a PDF gave no text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PdfError {
    #[error("not a PDF file (it does not start with `%PDF-`)")]
    NotPdf,
    #[error("a damaged PDF: {0}")]
    Damaged(String),
    #[error("encrypted with a password")]
    NeedsPassword,
    #[error("the password does not open it")]
    WrongPassword,
}

/// A glyph placed on the page.
#[derive(Debug, Clone)]
struct Glyph {
    text: String,
    x0: f64,
    x1: f64,
    y: f64,
    size: f64,
    /// The font, when the glyph has no Unicode.
    unmapped: Option<String>,
}

/// Open `bytes` as a PDF: with no password (an empty user password opens too), or with
/// `password`.
pub fn open(bytes: &[u8], password: Option<&str>) -> Result<Document, PdfError> {
    let start = bytes.iter().take(1024).position(|&b| b == b'%');
    if !start.is_some_and(|i| bytes[i..].starts_with(b"%PDF-")) {
        return Err(PdfError::NotPdf);
    }
    // A PDF ends with `%%EOF` (a little may follow it). Without it, the file was cut
    // short, a download that stopped: lopdf would recover what it can, and a statement
    // with its last pages missing must not load as if it were whole.
    let tail = &bytes[bytes.len().saturating_sub(2048)..];
    if !tail.windows(5).any(|w| w == b"%%EOF") {
        return Err(PdfError::Damaged(
            "it does not end with `%%EOF`: the file was cut short (an interrupted download?)"
                .into(),
        ));
    }
    let options = lopdf::LoadOptions {
        password: password.map(str::to_string),
        ..Default::default()
    };
    let doc = Document::load_mem_with_options(bytes, options).map_err(|e| match e {
        lopdf::Error::InvalidPassword => PdfError::WrongPassword,
        other => PdfError::Damaged(damage(&other)),
    })?;
    if doc.is_encrypted() {
        return Err(if password.is_some() {
            PdfError::WrongPassword
        } else {
            PdfError::NeedsPassword
        });
    }
    Ok(doc)
}

fn damage(e: &lopdf::Error) -> String {
    let text = e.to_string();
    if text.is_empty() {
        format!("{e:?}")
    } else {
        text
    }
}

/// The lines of every page of `doc`, in page order.
pub fn pages(doc: &Document) -> Result<Vec<Page>, PdfError> {
    let mut out = Vec::new();
    let mut fonts = FontCache::default();
    for (number, id) in doc.get_pages() {
        let page = doc
            .get_dictionary(id)
            .map_err(|e| PdfError::Damaged(format!("page {number}: {}", damage(&e))))?;
        let content = doc
            .get_page_content_with_limit(id, MAX_STREAM_BYTES)
            .map_err(|e| PdfError::Damaged(format!("page {number}: {}", damage(&e))))?;
        let resources = page_resources(doc, id);
        let mut run = Run {
            doc,
            fonts: &mut fonts,
            glyphs: Vec::new(),
            budget: MAX_OPERATIONS,
            forms: Vec::new(),
        };
        let state = State {
            ctm: page_matrix(doc, page, id),
            font: None,
            size: 0.0,
            char_spacing: 0.0,
            word_spacing: 0.0,
            scale: 1.0,
            leading: 0.0,
            rise: 0.0,
        };
        run.content(&content, resources, state, 0)
            .map_err(|e| PdfError::Damaged(format!("page {number}: {e}")))?;
        let glyphs = run.glyphs;
        out.push(Page {
            number,
            lines: layout(glyphs),
        });
    }
    Ok(out)
}

/// The resources a page uses (its own, or inherited from the page tree).
fn page_resources(doc: &Document, id: lopdf::ObjectId) -> Option<&Dictionary> {
    let (direct, ids) = doc.get_page_resources(id).ok()?;
    direct.or_else(|| ids.into_iter().find_map(|r| doc.get_dictionary(r).ok()))
}

/// The matrix from the page's user space to its displayed orientation: `/Rotate`
/// applied, the media box's corner at the origin.
fn page_matrix(doc: &Document, page: &Dictionary, id: lopdf::ObjectId) -> Matrix {
    let inherited = |key: &[u8]| -> Option<&Object> {
        let mut node = Some(page);
        let mut hops = 0;
        while let Some(n) = node {
            if let Ok(v) = n.get(key) {
                return doc.dereference(v).ok().map(|(_, o)| o);
            }
            node = n
                .get(b"Parent")
                .ok()
                .and_then(|p| p.as_reference().ok())
                .and_then(|r| doc.get_dictionary(r).ok());
            hops += 1;
            if hops > 64 {
                break;
            }
        }
        None
    };
    let _ = id;
    let media: Vec<f64> = inherited(b"MediaBox")
        .and_then(|o| o.as_array().ok())
        .map(|a| a.iter().filter_map(number).collect())
        .filter(|v: &Vec<f64>| v.len() == 4)
        .unwrap_or_else(|| vec![0.0, 0.0, 612.0, 792.0]);
    let (x0, y0, x1, y1) = (
        media[0].min(media[2]),
        media[1].min(media[3]),
        media[0].max(media[2]),
        media[1].max(media[3]),
    );
    let (w, h) = (x1 - x0, y1 - y0);
    let rotate = inherited(b"Rotate")
        .and_then(number)
        .map(|r| (r as i64).rem_euclid(360))
        .unwrap_or(0);
    let shift = Matrix([1.0, 0.0, 0.0, 1.0, -x0, -y0]);
    let turn = match rotate {
        90 => Matrix([0.0, -1.0, 1.0, 0.0, 0.0, w]),
        180 => Matrix([-1.0, 0.0, 0.0, -1.0, w, h]),
        270 => Matrix([0.0, 1.0, -1.0, 0.0, h, 0.0]),
        _ => Matrix::IDENTITY,
    };
    shift.then(&turn)
}

fn number(o: &Object) -> Option<f64> {
    match o {
        Object::Integer(i) => Some(*i as f64),
        Object::Real(r) => Some(*r as f64),
        _ => None,
    }
}

/// An affine matrix `[a b c d e f]` as PDF writes it (row vectors: p' = p × M).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Matrix([f64; 6]);

impl Matrix {
    const IDENTITY: Matrix = Matrix([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);

    /// `self` then `next`: self × next.
    fn then(&self, next: &Matrix) -> Matrix {
        let [a, b, c, d, e, f] = self.0;
        let [a2, b2, c2, d2, e2, f2] = next.0;
        Matrix([
            a * a2 + b * c2,
            a * b2 + b * d2,
            c * a2 + d * c2,
            c * b2 + d * d2,
            e * a2 + f * c2 + e2,
            e * b2 + f * d2 + f2,
        ])
    }

    fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        let [a, b, c, d, e, f] = self.0;
        (x * a + y * c + e, x * b + y * d + f)
    }

    fn translate(tx: f64, ty: f64) -> Matrix {
        Matrix([1.0, 0.0, 0.0, 1.0, tx, ty])
    }

    fn from_operands(ops: &[Object]) -> Option<Matrix> {
        let v: Vec<f64> = ops.iter().filter_map(number).collect();
        (v.len() == 6).then(|| Matrix([v[0], v[1], v[2], v[3], v[4], v[5]]))
    }
}

/// Text state and the graphics state that matters for text.
#[derive(Debug, Clone)]
struct State {
    ctm: Matrix,
    font: Option<usize>,
    size: f64,
    char_spacing: f64,
    word_spacing: f64,
    scale: f64,
    leading: f64,
    rise: f64,
}

/// Interprets content streams, collecting glyphs.
struct Run<'d, 'f> {
    doc: &'d Document,
    fonts: &'f mut FontCache,
    glyphs: Vec<Glyph>,
    /// Operations this page may still run.
    budget: usize,
    /// The forms being drawn, innermost last.
    forms: Vec<usize>,
}

/// The most drawing operations one page may run, forms included.
const MAX_OPERATIONS: usize = 5_000_000;

impl<'d> Run<'d, '_> {
    fn content(
        &mut self,
        bytes: &[u8],
        resources: Option<&'d Dictionary>,
        state: State,
        depth: usize,
    ) -> Result<(), String> {
        let content =
            Content::decode(bytes).map_err(|e| format!("its content stream: {}", damage(&e)))?;
        // Every operation of every form counts: a form drawn a thousand times by a form
        // drawn a thousand times is refused, not run for ever.
        self.budget = self
            .budget
            .checked_sub(content.operations.len())
            .ok_or_else(|| format!("more than {MAX_OPERATIONS} drawing operations on one page"))?;
        let mut state = state;
        let mut stack: Vec<State> = Vec::new();
        let mut tm = Matrix::IDENTITY;
        let mut tlm = Matrix::IDENTITY;
        for op in &content.operations {
            let o = &op.operands;
            let num = |i: usize| o.get(i).and_then(number).unwrap_or(0.0);
            match op.operator.as_str() {
                "q" => stack.push(state.clone()),
                "Q" => {
                    if let Some(s) = stack.pop() {
                        state = s;
                    }
                }
                "cm" => {
                    if let Some(m) = Matrix::from_operands(o) {
                        state.ctm = m.then(&state.ctm);
                    }
                }
                "BT" => {
                    tm = Matrix::IDENTITY;
                    tlm = Matrix::IDENTITY;
                }
                "Tf" => {
                    state.size = num(1);
                    let name = o.first().and_then(|n| n.as_name().ok());
                    state.font = name.and_then(|n| self.font(resources, n));
                }
                "Tc" => state.char_spacing = num(0),
                "Tw" => state.word_spacing = num(0),
                "Tz" => state.scale = num(0) / 100.0,
                "TL" => state.leading = num(0),
                "Ts" => state.rise = num(0),
                "Td" => {
                    tlm = Matrix::translate(num(0), num(1)).then(&tlm);
                    tm = tlm;
                }
                "TD" => {
                    state.leading = -num(1);
                    tlm = Matrix::translate(num(0), num(1)).then(&tlm);
                    tm = tlm;
                }
                "Tm" => {
                    if let Some(m) = Matrix::from_operands(o) {
                        tlm = m;
                        tm = m;
                    }
                }
                "T*" => {
                    tlm = Matrix::translate(0.0, -state.leading).then(&tlm);
                    tm = tlm;
                }
                "Tj" => {
                    if let Some(s) = o.first().and_then(|s| s.as_str().ok()) {
                        self.show(&state, &mut tm, s);
                    }
                }
                "'" | "\"" => {
                    if op.operator == "\"" {
                        state.word_spacing = num(0);
                        state.char_spacing = num(1);
                    }
                    tlm = Matrix::translate(0.0, -state.leading).then(&tlm);
                    tm = tlm;
                    if let Some(s) = o.last().and_then(|s| s.as_str().ok()) {
                        self.show(&state, &mut tm, s);
                    }
                }
                "TJ" => {
                    if let Some(items) = o.first().and_then(|a| a.as_array().ok()) {
                        for item in items {
                            match item {
                                Object::String(s, _) => self.show(&state, &mut tm, s),
                                other => {
                                    if let Some(n) = number(other) {
                                        let tx = -n / 1000.0 * state.size * state.scale;
                                        tm = Matrix::translate(tx, 0.0).then(&tm);
                                    }
                                }
                            }
                        }
                    }
                }
                "Do" if depth < MAX_FORM_DEPTH => {
                    if let Some(name) = o.first().and_then(|n| n.as_name().ok()) {
                        self.form(resources, name, &state, depth)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Draw a Form XObject named `name`.
    fn form(
        &mut self,
        resources: Option<&'d Dictionary>,
        name: &[u8],
        state: &State,
        depth: usize,
    ) -> Result<(), String> {
        let doc = self.doc;
        let Some(xobjects) = resources.and_then(|r| dict_in(doc, r, b"XObject")) else {
            return Ok(());
        };
        let Some(stream) = xobjects
            .get(name)
            .ok()
            .and_then(|o| doc.dereference(o).ok())
            .and_then(|(_, o)| o.as_stream().ok())
        else {
            return Ok(());
        };
        if stream.dict.get(b"Subtype").and_then(|s| s.as_name()).ok() != Some(b"Form") {
            return Ok(());
        }
        let matrix = stream
            .dict
            .get(b"Matrix")
            .ok()
            .and_then(|m| m.as_array().ok())
            .and_then(|m| Matrix::from_operands(m))
            .unwrap_or(Matrix::IDENTITY);
        let own = dict_in(doc, &stream.dict, b"Resources").or(resources);
        // A form that draws itself (directly or through others) is drawn once.
        let key = stream as *const lopdf::Stream as usize;
        if self.forms.contains(&key) {
            return Ok(());
        }
        let bytes = stream
            .decompressed_content_with_limit(MAX_STREAM_BYTES)
            .unwrap_or_else(|_| stream.content.clone());
        // Painted with the graphics state at `Do`, text state included.
        let inner = State {
            ctm: matrix.then(&state.ctm),
            ..state.clone()
        };
        self.forms.push(key);
        let drawn = self.content(&bytes, own, inner, depth + 1);
        self.forms.pop();
        drawn
    }

    /// The font a resource name picks, loaded once.
    fn font(&mut self, resources: Option<&'d Dictionary>, name: &[u8]) -> Option<usize> {
        let doc = self.doc;
        let fonts = dict_in(doc, resources?, b"Font")?;
        let dict = doc
            .dereference(fonts.get(name).ok()?)
            .ok()?
            .1
            .as_dict()
            .ok()?;
        Some(self.fonts.load(doc, dict, &String::from_utf8_lossy(name)))
    }

    /// Show a string: one glyph per character code, advancing the text matrix.
    fn show(&mut self, state: &State, tm: &mut Matrix, bytes: &[u8]) {
        let Some(font) = state.font.map(|i| &self.fonts.fonts[i]) else {
            return;
        };
        let step = if font.two_byte { 2 } else { 1 };
        for code_bytes in bytes.chunks(step) {
            let code = code_bytes.iter().fold(0u32, |c, &b| c << 8 | b as u32);
            let text = font.unicode(code, step);
            let w0 = font.width(code, text.as_deref());
            let trm = Matrix([
                state.size * state.scale,
                0.0,
                0.0,
                state.size,
                0.0,
                state.rise,
            ])
            .then(tm)
            .then(&state.ctm);
            let (x, y) = trm.apply(0.0, 0.0);
            // The glyph's box ends at its advance: character spacing is a gap, as
            // Ghostscript writes word gaps (`2.25 Tc (eS) Tj`), so letter-spaced text
            // reads as single letters.
            let (xe, _) = trm.apply(w0 * font.glyph_scale, 0.0);
            // The size a reader sees: the text space's vertical unit on the page.
            let (vx, vy) = (trm.0[2], trm.0[3]);
            let size = (vx * vx + vy * vy).sqrt().max(0.1);
            let space = step == 1 && code == 32;
            let tx = (w0 * font.glyph_scale * state.size
                + state.char_spacing
                + if space { state.word_spacing } else { 0.0 })
                * state.scale;
            *tm = Matrix::translate(tx, 0.0).then(tm);
            let (text, unmapped) = match text {
                Some(t) => (t, None),
                None => ("\u{FFFD}".to_string(), Some(font.name.clone())),
            };
            self.glyphs.push(Glyph {
                text,
                x0: x.min(xe),
                x1: x.max(xe),
                y,
                size,
                unmapped,
            });
        }
    }
}

/// A dictionary entry that is (or refers to) a dictionary.
fn dict_in<'d>(doc: &'d Document, dict: &'d Dictionary, key: &[u8]) -> Option<&'d Dictionary> {
    doc.dereference(dict.get(key).ok()?).ok()?.1.as_dict().ok()
}

/// Fonts loaded so far, by the address of their dictionary.
#[derive(Default)]
struct FontCache {
    fonts: Vec<Font>,
    by_dict: HashMap<usize, usize>,
}

impl FontCache {
    fn load(&mut self, doc: &Document, dict: &Dictionary, resource: &str) -> usize {
        let key = dict as *const Dictionary as usize;
        if let Some(&i) = self.by_dict.get(&key) {
            return i;
        }
        self.fonts.push(Font::load(doc, dict, resource));
        self.by_dict.insert(key, self.fonts.len() - 1);
        self.fonts.len() - 1
    }
}

/// What the interpreter needs of a font.
struct Font {
    /// How messages name it: the resource name and the base font.
    name: String,
    /// Type0: two-byte codes.
    two_byte: bool,
    /// The ToUnicode CMap: code (and its length in bytes) to text.
    to_unicode: Option<HashMap<(u32, u8), String>>,
    /// A simple font's encoding (base encoding and `/Differences`): each code's text,
    /// `None` where the code means nothing known.
    encoding: Option<Vec<Option<String>>>,
    /// Advance widths by code (glyph space units of 1/1000 em, or Type3 units).
    widths: HashMap<u32, f64>,
    default_width: f64,
    /// A standard 14 font's widths by character, for fonts without `/Widths`.
    standard: Option<&'static [u16]>,
    /// Glyph space to text space: 1/1000, or a Type3 font's FontMatrix.
    glyph_scale: f64,
}

impl Font {
    fn load(doc: &Document, dict: &Dictionary, resource: &str) -> Font {
        let name_of = |d: &Dictionary, k: &[u8]| {
            d.get(k)
                .ok()
                .and_then(|o| doc.dereference(o).ok())
                .and_then(|(_, o)| o.as_name().ok())
                .map(|n| String::from_utf8_lossy(n).into_owned())
        };
        let subtype = name_of(dict, b"Subtype").unwrap_or_default();
        let base = name_of(dict, b"BaseFont").unwrap_or_default();
        let name = if base.is_empty() {
            format!("`{resource}`")
        } else {
            format!("`{resource}` ({base})")
        };
        let to_unicode = dict
            .get(b"ToUnicode")
            .ok()
            .and_then(|o| doc.dereference(o).ok())
            .and_then(|(_, o)| o.as_stream().ok())
            .and_then(|s| {
                s.decompressed_content_with_limit(MAX_STREAM_BYTES)
                    .ok()
                    .or_else(|| Some(s.content.clone()))
            })
            .map(|bytes| parse_to_unicode(&bytes));
        let two_byte = subtype == "Type0";
        let descriptor = |d| dict_in(doc, d, b"FontDescriptor");
        let mut widths = HashMap::new();
        let default_width: f64;
        let mut glyph_scale = 0.001;
        if two_byte {
            let descendant = dict
                .get(b"DescendantFonts")
                .ok()
                .and_then(|o| doc.dereference(o).ok())
                .and_then(|(_, o)| o.as_array().ok())
                .and_then(|a| a.first())
                .and_then(|o| doc.dereference(o).ok())
                .and_then(|(_, o)| o.as_dict().ok());
            if let Some(cid) = descendant {
                default_width = cid.get(b"DW").ok().and_then(number).unwrap_or(1000.0);
                if let Some(w) = cid
                    .get(b"W")
                    .ok()
                    .and_then(|o| doc.dereference(o).ok())
                    .and_then(|(_, o)| o.as_array().ok())
                {
                    cid_widths(doc, w, &mut widths);
                }
            } else {
                default_width = 1000.0;
            }
        } else {
            let first = dict.get(b"FirstChar").ok().and_then(number).unwrap_or(0.0) as u32;
            if let Some(w) = dict
                .get(b"Widths")
                .ok()
                .and_then(|o| doc.dereference(o).ok())
                .and_then(|(_, o)| o.as_array().ok())
            {
                for (i, v) in w.iter().enumerate() {
                    if let Some(v) = doc.dereference(v).ok().and_then(|(_, o)| number(o)) {
                        widths.insert(first.saturating_add(i as u32), v);
                    }
                }
            }
            default_width = descriptor(dict)
                .and_then(|d| d.get(b"MissingWidth").ok())
                .and_then(number)
                .unwrap_or(0.0);
            if subtype == "Type3" {
                if let Some(m) = dict
                    .get(b"FontMatrix")
                    .ok()
                    .and_then(|m| m.as_array().ok())
                    .and_then(|m| Matrix::from_operands(m))
                {
                    glyph_scale = m.0[0];
                }
            }
        }
        // A simple font's codes mean something without ToUnicode when it names an
        // encoding, or when it is not symbolic (its built-in encoding is Standard).
        let symbolic = descriptor(dict)
            .and_then(|d| d.get(b"Flags").ok())
            .and_then(number)
            .is_some_and(|f| (f as i64) & 4 != 0);
        let encoding = if two_byte {
            None
        } else {
            encoding_table(doc, dict, symbolic)
        };
        let plain = base.split('+').next_back().unwrap_or(&base);
        let standard = if widths.is_empty() && !two_byte {
            metrics::WIDTHS
                .iter()
                .find(|(n, _)| *n == standard_name(plain))
                .map(|(_, w)| *w)
        } else {
            None
        };
        Font {
            name,
            two_byte,
            to_unicode,
            encoding,
            widths,
            default_width,
            standard,
            glyph_scale,
        }
    }

    /// The Unicode text of a code: ToUnicode first, then the encoding.
    fn unicode(&self, code: u32, len: usize) -> Option<String> {
        if let Some(text) = self
            .to_unicode
            .as_ref()
            .and_then(|m| m.get(&(code, len as u8)))
        {
            if usable(text) {
                return Some(expand_ligature(text.clone()));
            }
        }
        if let (Some(table), 1) = (&self.encoding, len) {
            if let Some(Some(text)) = table.get(code as usize) {
                return Some(expand_ligature(text.clone()));
            }
        }
        None
    }

    /// The advance width of a code, in glyph space units.
    fn width(&self, code: u32, text: Option<&str>) -> f64 {
        if let Some(w) = self.widths.get(&code) {
            return *w;
        }
        if let (Some(table), Some(t)) = (self.standard, text) {
            let mut chars = t.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                if let Some(i) = metrics::CHARS.chars().position(|k| k == c) {
                    if let Some(&w) = table.get(i).filter(|w| **w > 0) {
                        return w as f64;
                    }
                }
            }
        }
        if self.standard.is_some() || self.widths.is_empty() && self.default_width == 0.0 {
            // Courier, or a font that gives no widths at all: an average advance.
            return 600.0;
        }
        self.default_width
    }
}

/// A simple font's codes as text: its base encoding (the named one; else Standard, the
/// built-in encoding of a non-symbolic font) with `/Differences` on top. A glyph name the
/// Adobe Glyph List does not know (nor `uniXXXX`, `uXXXX`) leaves its code unmapped, never
/// guessed.
fn encoding_table(
    doc: &Document,
    font: &Dictionary,
    symbolic: bool,
) -> Option<Vec<Option<String>>> {
    let encoding = font
        .get(b"Encoding")
        .ok()
        .and_then(|o| doc.dereference(o).ok())
        .map(|(_, o)| o);
    let (base, differences) = match encoding {
        Some(Object::Name(n)) => (Some(n.as_slice()), None),
        Some(Object::Dictionary(d)) => (
            d.get(b"BaseEncoding").ok().and_then(|b| b.as_name().ok()),
            d.get(b"Differences")
                .ok()
                .and_then(|a| doc.dereference(a).ok())
                .and_then(|(_, a)| a.as_array().ok()),
        ),
        _ => (None, None),
    };
    let base = match base {
        Some(b) => Some(b),
        None if !symbolic => Some(&b"StandardEncoding"[..]),
        None => None,
    };
    let mut table: Vec<Option<String>> = vec![None; 256];
    if let Some(base) = base.filter(|b| {
        matches!(
            *b,
            b"StandardEncoding"
                | b"WinAnsiEncoding"
                | b"MacRomanEncoding"
                | b"PDFDocEncoding"
                | b"MacExpertEncoding"
        )
    }) {
        let mut probe = Dictionary::new();
        probe.set("Type", Object::Name(b"Font".to_vec()));
        probe.set("Subtype", Object::Name(b"Type1".to_vec()));
        probe.set("Encoding", Object::Name(base.to_vec()));
        if let Ok(enc) = probe.get_font_encoding(doc) {
            for (code, slot) in table.iter_mut().enumerate() {
                *slot = enc
                    .bytes_to_string(&[code as u8])
                    .ok()
                    .filter(|t| usable(t));
            }
        }
    }
    let mut code = 0usize;
    for item in differences.into_iter().flatten() {
        match item {
            Object::Integer(c) => code = (*c).clamp(0, 255) as usize,
            Object::Name(name) => {
                if let Some(slot) = table.get_mut(code) {
                    *slot = glyph_text(doc, name, code as u8);
                }
                code += 1;
            }
            _ => {}
        }
    }
    table.iter().any(Option::is_some).then_some(table)
}

/// The text of a glyph name: `uni20AC`, `u1F600`, or a name of the Adobe Glyph List (as
/// lopdf knows it).
fn glyph_text(doc: &Document, name: &[u8], code: u8) -> Option<String> {
    let text = std::str::from_utf8(name).ok()?;
    let hex = |h: &str| u32::from_str_radix(h, 16).ok().and_then(char::from_u32);
    if let Some(h) = text.strip_prefix("uni").filter(|h| h.len() == 4) {
        return hex(h).map(String::from).filter(|t| usable(t));
    }
    if let Some(h) = text
        .strip_prefix('u')
        .filter(|h| (4..=6).contains(&h.len()))
    {
        if let Some(c) = hex(h) {
            return Some(c.to_string()).filter(|t| usable(t));
        }
    }
    // lopdf resolves names through the Adobe Glyph List when it builds an encoding from
    // /Differences; a name it does not know makes it fall back, which tells us.
    let mut probe = Dictionary::new();
    probe.set("Type", Object::Name(b"Font".to_vec()));
    probe.set("Subtype", Object::Name(b"Type1".to_vec()));
    let mut enc = Dictionary::new();
    enc.set(
        "Differences",
        Object::Array(vec![
            Object::Integer(code as i64),
            Object::Name(name.to_vec()),
        ]),
    );
    probe.set("Encoding", Object::Dictionary(enc));
    match probe.get_font_encoding(doc) {
        Ok(e @ Encoding::Differences(_)) => e.bytes_to_string(&[code]).ok().filter(|t| usable(t)),
        _ => None,
    }
}

/// The standard 14 name a base font stands for (`Arial` is Helvetica's metric twin).
fn standard_name(base: &str) -> &str {
    let b = base.replace(['-', ','], "").to_ascii_lowercase();
    let bold = b.contains("bold");
    let italic = b.contains("italic") || b.contains("oblique");
    if b.starts_with("helvetica") || b.starts_with("arial") {
        match (bold, italic) {
            (false, false) => "Helvetica",
            (true, false) => "Helvetica-Bold",
            (false, true) => "Helvetica-Oblique",
            (true, true) => "Helvetica-BoldOblique",
        }
    } else if b.starts_with("times") {
        match (bold, italic) {
            (false, false) => "Times-Roman",
            (true, false) => "Times-Bold",
            (false, true) => "Times-Italic",
            (true, true) => "Times-BoldItalic",
        }
    } else {
        ""
    }
}

/// Whether decoded text can stand for a glyph: not empty, no replacement character, no
/// control characters.
fn usable(text: &str) -> bool {
    !text.is_empty()
        && !text
            .chars()
            .any(|c| c == '\u{FFFD}' || (c.is_control() && c != '\t'))
}

/// Ligature characters as the letters they stand for.
fn expand_ligature(text: String) -> String {
    match text.as_str() {
        "\u{FB00}" => "ff".into(),
        "\u{FB01}" => "fi".into(),
        "\u{FB02}" => "fl".into(),
        "\u{FB03}" => "ffi".into(),
        "\u{FB04}" => "ffl".into(),
        "\u{FB05}" | "\u{FB06}" => "st".into(),
        _ => text,
    }
}

/// A ToUnicode CMap's mappings, read leniently: every `<src> <dst>` pair between
/// `beginbfchar` and `endbfchar`, and every `<lo> <hi> <dst>` or `<lo> <hi> [<dst>…]`
/// between `beginbfrange` and `endbfrange`, whatever else (or however little) the CMap
/// says around them. A code's length is its hex string's.
fn parse_to_unicode(bytes: &[u8]) -> HashMap<(u32, u8), String> {
    #[derive(Debug, PartialEq)]
    enum Tok {
        Hex(Vec<u8>),
        Open,
        Close,
        Word(String),
    }
    let mut toks = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' if bytes.get(i + 1) != Some(&b'<') => {
                let end = bytes[i..]
                    .iter()
                    .position(|&b| b == b'>')
                    .map_or(bytes.len(), |e| i + e);
                let digits: Vec<u8> = bytes[i + 1..end]
                    .iter()
                    .copied()
                    .filter(u8::is_ascii_hexdigit)
                    .collect();
                let hex: Vec<u8> = digits
                    .chunks(2)
                    .filter_map(|c| {
                        u8::from_str_radix(std::str::from_utf8(c).ok()?, 16)
                            .ok()
                            .map(|v| if c.len() == 1 { v << 4 } else { v })
                    })
                    .collect();
                toks.push(Tok::Hex(hex));
                i = end + 1;
            }
            b'[' => {
                toks.push(Tok::Open);
                i += 1;
            }
            b']' => {
                toks.push(Tok::Close);
                i += 1;
            }
            b'%' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b if b.is_ascii_alphanumeric() || b == b'/' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'/' || bytes[i] == b'-')
                {
                    i += 1;
                }
                toks.push(Tok::Word(
                    String::from_utf8_lossy(&bytes[start..i]).into_owned(),
                ));
            }
            _ => i += 1,
        }
    }
    let code_of = |h: &[u8]| h.iter().fold(0u32, |c, &b| c << 8 | b as u32);
    let text_of = |h: &[u8]| {
        let units: Vec<u16> = h
            .chunks(2)
            .map(|c| (c[0] as u16) << 8 | *c.get(1).unwrap_or(&0) as u16)
            .collect();
        String::from_utf16_lossy(&units)
    };
    let mut map = HashMap::new();
    // A CMap maps at most every two-byte code and then some: more is an attack on memory.
    const MAX_ENTRIES: usize = 1 << 18;
    let mut k = 0;
    while k < toks.len() && map.len() < MAX_ENTRIES {
        match &toks[k] {
            Tok::Word(w) if w == "beginbfchar" => {
                k += 1;
                while let (Some(Tok::Hex(src)), Some(Tok::Hex(dst))) =
                    (toks.get(k), toks.get(k + 1))
                {
                    map.insert((code_of(src), src.len() as u8), text_of(dst));
                    k += 2;
                }
            }
            Tok::Word(w) if w == "beginbfrange" => {
                k += 1;
                while let (Some(Tok::Hex(lo)), Some(Tok::Hex(hi))) = (toks.get(k), toks.get(k + 1))
                {
                    let (lo_code, hi_code) = (
                        code_of(lo),
                        code_of(hi).min(code_of(lo).saturating_add(65_535)),
                    );
                    let len = lo.len() as u8;
                    match toks.get(k + 2) {
                        Some(Tok::Hex(dst)) => {
                            // The last UTF-16 unit counts up through the range.
                            let mut units: Vec<u16> = dst
                                .chunks(2)
                                .map(|c| (c[0] as u16) << 8 | *c.get(1).unwrap_or(&0) as u16)
                                .collect();
                            for code in lo_code..=hi_code {
                                if map.len() >= MAX_ENTRIES {
                                    break;
                                }
                                map.insert((code, len), String::from_utf16_lossy(&units));
                                if let Some(last) = units.last_mut() {
                                    *last = last.wrapping_add(1);
                                }
                            }
                            k += 3;
                        }
                        Some(Tok::Open) => {
                            k += 3;
                            let mut code = lo_code;
                            while let Some(Tok::Hex(dst)) = toks.get(k) {
                                if code <= hi_code {
                                    map.insert((code, len), text_of(dst));
                                }
                                code = code.saturating_add(1);
                                k += 1;
                            }
                            if toks.get(k) == Some(&Tok::Close) {
                                k += 1;
                            }
                        }
                        _ => break,
                    }
                }
            }
            _ => k += 1,
        }
    }
    map
}

/// A CID font's `/W` array: `c [w1 w2 …]` or `c_first c_last w`.
fn cid_widths(doc: &Document, w: &[Object], out: &mut HashMap<u32, f64>) {
    let mut i = 0;
    while i < w.len() {
        let Some(first) = number(&w[i]) else {
            return;
        };
        let first = first as u32;
        match w.get(i + 1).map(|o| doc.dereference(o).map(|(_, o)| o)) {
            Some(Ok(Object::Array(list))) => {
                for (k, v) in list.iter().enumerate() {
                    if let Some(v) = number(v) {
                        out.insert(first.saturating_add(k as u32), v);
                    }
                }
                i += 2;
            }
            Some(Ok(last)) => {
                let (Some(last), Some(v)) = (number(last), w.get(i + 2).and_then(number)) else {
                    return;
                };
                for c in first..=(last as u32).min(first.saturating_add(65_535)) {
                    out.insert(c, v);
                }
                i += 3;
            }
            _ => return,
        }
    }
}

/// Glyphs into lines: by baseline, then by x; words split at gaps; duplicates drawn
/// over each other (fake bold) dropped.
fn layout(mut glyphs: Vec<Glyph>) -> Vec<Line> {
    glyphs.retain(|g| g.x0.is_finite() && g.y.is_finite());
    glyphs.sort_by(|a, b| b.y.total_cmp(&a.y).then(a.x0.total_cmp(&b.x0)));
    let mut rows: Vec<Vec<Glyph>> = Vec::new();
    for g in glyphs {
        match rows.last_mut() {
            Some(row)
                if {
                    let first = &row[0];
                    (first.y - g.y).abs() <= 0.4 * first.size.min(g.size).max(1.0)
                } =>
            {
                row.push(g)
            }
            _ => rows.push(vec![g]),
        }
    }
    let mut lines = Vec::new();
    for mut row in rows {
        row.sort_by(|a, b| a.x0.total_cmp(&b.x0));
        let mut words: Vec<String> = Vec::new();
        let mut current = String::new();
        let mut last: Option<&Glyph> = None;
        let mut unmapped = None;
        for g in &row {
            if let Some(p) = last {
                // The same glyph drawn again at (nearly) the same place: fake bold.
                if p.text == g.text
                    && (g.x0 - p.x0).abs() < 0.1 * g.size
                    && (g.y - p.y).abs() < 0.1 * g.size
                {
                    continue;
                }
            }
            if g.text.trim().is_empty() {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
                last = Some(g);
                continue;
            }
            if let Some(p) = last {
                let gap = g.x0 - p.x1;
                if gap > 0.15 * g.size.max(p.size) && !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            if g.unmapped.is_some() && unmapped.is_none() {
                unmapped = g.unmapped.clone();
            }
            current.push_str(&g.text);
            last = Some(g);
        }
        if !current.is_empty() {
            words.push(current);
        }
        if words.is_empty() {
            continue;
        }
        let first = row
            .iter()
            .find(|g| !g.text.trim().is_empty())
            .unwrap_or(&row[0]);
        lines.push(Line {
            text: words.join(" "),
            x: first.x0,
            y: first.y,
            unmapped,
        });
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glyph(text: &str, x0: f64, y: f64) -> Glyph {
        Glyph {
            text: text.into(),
            x0,
            x1: x0 + 5.0,
            y,
            size: 10.0,
            unmapped: None,
        }
    }

    #[test]
    fn glyphs_make_lines_in_reading_order_whatever_order_they_were_drawn() {
        // Drawn bottom line first, right to left, with a fake-bold duplicate.
        let glyphs = vec![
            glyph("2", 105.0, 100.0),
            glyph("1", 100.0, 100.0),
            glyph("b", 55.0, 100.5),
            glyph("a", 50.0, 100.0),
            glyph("a", 50.3, 100.0),
            glyph("y", 55.0, 120.0),
            glyph("x", 50.0, 120.0),
        ];
        let lines = layout(glyphs);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["xy", "ab 12"]);
    }

    #[test]
    fn matrices_compose_as_pdf_writes_them() {
        let scale = Matrix([2.0, 0.0, 0.0, 2.0, 0.0, 0.0]);
        let shift = Matrix::translate(10.0, 5.0);
        // Scale first, then shift.
        assert_eq!(scale.then(&shift).apply(1.0, 1.0), (12.0, 7.0));
        assert_eq!(shift.then(&scale).apply(1.0, 1.0), (22.0, 12.0));
    }

    #[test]
    fn standard_fonts_are_found_by_their_base_names() {
        assert_eq!(standard_name("Helvetica-Bold"), "Helvetica-Bold");
        assert_eq!(standard_name("Arial,BoldItalic"), "Helvetica-BoldOblique");
        assert_eq!(standard_name("Times-Roman"), "Times-Roman");
        assert_eq!(standard_name("Courier"), "");
        let helvetica = metrics::WIDTHS
            .iter()
            .find(|(n, _)| *n == "Helvetica")
            .expect("table");
        let i = metrics::CHARS.chars().position(|c| c == 'W').expect("W");
        assert_eq!(helvetica.1[i], 944);
    }

    #[test]
    fn to_unicode_maps_are_read_leniently() {
        let cmap = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
            1 begincodespacerange <0000> <FFFF> endcodespacerange\n\
            2 beginbfchar <0001> <FB01> <0002> <D83DDE00> endbfchar\n\
            2 beginbfrange <0010> <0012> <0041> <0020> <0021> [<0078> <00790079>] endbfrange\n\
            endcmap";
        let m = parse_to_unicode(cmap);
        assert_eq!(m.get(&(1, 2)).map(String::as_str), Some("\u{FB01}"));
        assert_eq!(m.get(&(2, 2)).map(String::as_str), Some("😀"));
        assert_eq!(m.get(&(0x12, 2)).map(String::as_str), Some("C"));
        assert_eq!(m.get(&(0x21, 2)).map(String::as_str), Some("yy"));
        assert_eq!(m.get(&(0x13, 2)), None);
    }

    #[test]
    fn non_pdf_bytes_are_refused_by_name() {
        assert_eq!(
            open(b"PK\x03\x04 a zip", None).err(),
            Some(PdfError::NotPdf)
        );
        assert!(matches!(
            open(b"%PDF-1.4\n1 0 obj", None),
            Err(PdfError::Damaged(_))
        ));
    }
}
