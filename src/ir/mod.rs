//! The witness IR: one observed API call as protobuf messages, its stable hash, its text form
//! and a visitor over it.
//!
//! # Contract
//!
//! - **Types** ([`pb`]): hand-written `prost` messages, wire-compatible with the `api_spec`
//!   package of the Akita IR: same field numbers, wire types, oneofs and nested enums. A
//!   [`Witness`] we encode (`prost::Message::encode`) decodes with the Akita schema and vice
//!   versa; unknown fields are dropped on decode. Maps are `BTreeMap`s, so the same witness always
//!   encodes and prints to the same bytes.
//! - **Hash** ([`hash`]): ObjectHash over XXH64, equal to what the Akita tooling computed for the
//!   same message (checked against the shared test vectors). [`digest`] gives the 8-byte
//!   [`Digest`], [`digest_text`] its 12-character base64url form (with padding), which is the
//!   key format of `Method.args`, `Method.responses` and `OneOf.options`. The hash ignores
//!   `HTTPMethodMeta.processing_latency` and `Data.example_values`, hashes map keys exactly as
//!   stored (it never recomputes a key), and does not depend on map iteration order. It is
//!   computed per type without reflection; with a reused [`ObjectHasher`] it allocates nothing.
//! - **Text** ([`text`]): protobuf text format, parsed into these types (errors carry
//!   `line:column`) and printed back; print-then-parse gives the same message.
//! - **Visitor** ([`visit`]): hooks with early stop and skip-children, called with the path to
//!   each node and the HTTP location in effect; a reused [`visit::Walker`] allocates nothing.
//!
//! - **Construction** ([`build`]): an HTTP exchange becomes a witness; bodies are parsed by
//!   content type ([`body`]), string values categorised and their formats detected
//!   ([`formats`]), paths optionally templated ([`template`]) and sensitive values optionally
//!   redacted ([`redact`]). Values are built as a compact tree ([`value::Val`]) whose hash equals
//!   the ObjectHash of the `Data` it stands for and whose encoding is `prost`'s, byte for byte,
//!   computed in linear passes; [`build::Built::to_pb`] gives the `prost` messages. Body nesting
//!   is capped ([`body::MAX_DEPTH`]) and so are list lengths ([`body::MAX_LIST`]): the hash,
//!   printer and walker recurse once per nesting level; the text parser caps nesting at
//!   [`text::MAX_DEPTH`].
//! - **JSON** ([`json`]): witnesses in protobuf's JSON mapping (`apitool witness dump`).

pub mod body;
pub mod build;
pub mod formats;
pub mod hash;
pub mod json;
pub mod pb;
pub mod redact;
pub mod template;
pub mod text;
pub mod value;
pub mod visit;

pub use hash::{Digest, ObjectHash, ObjectHasher, digest, digest_text};
pub use pb::Witness;
