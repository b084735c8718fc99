//! A page of a SpyCloud call, `{"cursor", "hits", "results": [...]}`, read straight into what
//! the call collects: breach records into a [`RecordSink`], catalogs into the list asked for.
//!
//! Both are one serde visitor of the envelope ([`Page`]) over what its `results` are read into
//! ([`PageResults`]), so a page never exists as a list of values.

use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::domain::{Catalog, CatalogId, RawRecord, RecordSink, SourceError};

/// Folds one breach-data page into `into`, record by record as the JSON is read, and returns
/// its cursor. Records past what `into` wants are skipped unread.
pub(super) fn fold_breach_page(
    body: &[u8],
    into: &mut dyn RecordSink,
) -> Result<Option<Value>, SourceError> {
    fold_page(body, Records { into })
}

/// Folds one catalog page into `found`, catalog by catalog as the JSON is read: the catalogs of
/// `wanted` not yet found are kept, everything else (other ids, a second answer for an id, a
/// catalog in an unknown shape) is dropped once read. Returns the page's cursor.
pub(super) fn fold_catalog_page(
    body: &[u8],
    wanted: &[CatalogId],
    found: &mut Vec<Catalog>,
) -> Result<Option<Value>, SourceError> {
    fold_page(body, Catalogs { wanted, found })
}

/// What a page's `results` array is read into.
trait PageResults {
    /// What the page holds, for serde's messages.
    const PAGE: &'static str;
    /// What its `results` array holds, for serde's messages.
    const ARRAY: &'static str;
    /// The error when an element of `results` is not what it should be.
    const BAD_ELEMENT: &'static str;

    /// The page's `hits`, the number of results of the whole call.
    fn hits(&mut self, _hits: u64) {}

    /// Reads the `results` array, element by element.
    fn read<'de, A: SeqAccess<'de>>(&mut self, elements: A) -> Result<(), A::Error>;
}

/// Reads one page of `body` into `results` and returns its cursor; an answer that is not such a
/// page is [`SourceError::InvalidResponse`].
fn fold_page<R: PageResults>(body: &[u8], mut results: R) -> Result<Option<Value>, SourceError> {
    let text = std::str::from_utf8(body).map_err(|_| invalid_json())?;
    let mut reader = serde_json::Deserializer::from_str(text);
    let mut shape = PageShape::default();
    let folded = Page {
        results: &mut results,
        shape: &mut shape,
    }
    .deserialize(&mut reader)
    .and_then(|cursor| reader.end().map(|()| cursor));
    let no_results = || SourceError::InvalidResponse(NO_RESULTS.to_owned());
    match folded {
        Ok(cursor) if shape.results => Ok(cursor),
        Ok(_) => Err(no_results()),
        Err(error) if error.is_data() && shape.in_results => {
            Err(SourceError::InvalidResponse(R::BAD_ELEMENT.to_owned()))
        }
        Err(error) if error.is_data() => Err(no_results()),
        Err(_) => Err(invalid_json()),
    }
}

const NO_RESULTS: &str = "SpyCloud's answer has no results array";

fn invalid_json() -> SourceError {
    SourceError::InvalidResponse("SpyCloud answered with invalid JSON".to_owned())
}

/// What reading a page showed about its shape, to say what was wrong with it.
#[derive(Default)]
struct PageShape {
    /// A `results` array was read to its end.
    results: bool,
    /// Reading was inside the `results` array.
    in_results: bool,
}

/// The fields of a page the relay reads.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum PageField {
    Cursor,
    Hits,
    Results,
    #[serde(other)]
    Other,
}

/// A page `{"cursor", "hits", "results": [...]}` read into its [`PageResults`]; its value is
/// the cursor.
struct Page<'s, R> {
    results: &'s mut R,
    shape: &'s mut PageShape,
}

impl<'de, R: PageResults> DeserializeSeed<'de> for Page<'_, R> {
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, reader: D) -> Result<Self::Value, D::Error> {
        reader.deserialize_map(self)
    }
}

impl<'de, R: PageResults> Visitor<'de> for Page<'_, R> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(R::PAGE)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<Self::Value, A::Error> {
        let mut cursor = None;
        while let Some(field) = fields.next_key::<PageField>()? {
            match field {
                PageField::Cursor => cursor = fields.next_value::<Option<Value>>()?,
                PageField::Hits => {
                    if let Some(hits) = fields.next_value::<Value>()?.as_u64() {
                        self.results.hits(hits);
                    }
                }
                PageField::Results => {
                    fields.next_value_seed(ResultsArray {
                        results: &mut *self.results,
                        shape: &mut *self.shape,
                    })?;
                    self.shape.in_results = false;
                    self.shape.results = true;
                }
                PageField::Other => {
                    fields.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(cursor)
    }
}

/// A page's `results` array, handed to its [`PageResults`].
struct ResultsArray<'s, R> {
    results: &'s mut R,
    shape: &'s mut PageShape,
}

impl<'de, R: PageResults> DeserializeSeed<'de> for ResultsArray<'_, R> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, reader: D) -> Result<(), D::Error> {
        reader.deserialize_seq(self)
    }
}

impl<'de, R: PageResults> Visitor<'de> for ResultsArray<'_, R> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(R::ARRAY)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, elements: A) -> Result<(), A::Error> {
        self.shape.in_results = true;
        self.results.read(elements)
    }
}

/// Breach records, each handed to the sink as soon as it is read.
struct Records<'s> {
    into: &'s mut dyn RecordSink,
}

impl PageResults for Records<'_> {
    const PAGE: &'static str = "a page of breach records";
    const ARRAY: &'static str = "an array of breach records";
    const BAD_ELEMENT: &'static str = "a breach record is not a JSON object";

    fn hits(&mut self, hits: u64) {
        self.into.hits(hits);
    }

    fn read<'de, A: SeqAccess<'de>>(&mut self, mut records: A) -> Result<(), A::Error> {
        while self.into.wants_more() {
            match records.next_element::<RawRecord>()? {
                Some(record) => self.into.add(record),
                None => return Ok(()),
            }
        }
        // The sink is full: the rest of the page is skipped, not built.
        while records.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// Catalogs, each one asked for kept as soon as it is read.
struct Catalogs<'s> {
    wanted: &'s [CatalogId],
    found: &'s mut Vec<Catalog>,
}

impl PageResults for Catalogs<'_> {
    const PAGE: &'static str = "a page of breach catalogs";
    const ARRAY: &'static str = "an array of breach catalogs";
    // Catalogs are read as any JSON value first, so an element cannot be of the wrong type.
    const BAD_ELEMENT: &'static str = NO_RESULTS;

    fn read<'de, A: SeqAccess<'de>>(&mut self, mut catalogs: A) -> Result<(), A::Error> {
        // One catalog's JSON at a time (a page is at most MAX_CATALOG_BYTES): its id decides
        // whether it is read into a catalog or dropped.
        while let Some(value) = catalogs.next_element::<Value>()? {
            let id = value.get("id").and_then(CatalogId::from_value);
            let wanted = id.is_some_and(|id| {
                self.wanted.contains(&id) && !self.found.iter().any(|found| found.id == id)
            });
            if !wanted {
                continue;
            }
            match serde_json::from_value::<Catalog>(value) {
                Ok(catalog) => self.found.push(catalog),
                Err(error) => {
                    tracing::debug!(%error, "skipping a catalog SpyCloud sent in an unknown shape");
                }
            }
        }
        Ok(())
    }
}
