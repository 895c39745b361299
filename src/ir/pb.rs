//! Hand-written `prost` types for the `api_spec` protobuf package (wire-compatible with the
//! Akita IR, `proto/api_spec/*.proto`).
//!
//! Field numbers, wire types, oneofs and nested enums follow the schema exactly; names follow
//! what `prost-build` would generate, with two exceptions that would shadow the prelude:
//! `api_spec.String` is [`Str`] and `api_spec.None` is [`NoneValue`]. Type names never reach the
//! wire or the text format (both use field numbers or field names), so this costs nothing.
//!
//! Maps are [`BTreeMap`]s, not `HashMap`s: `prost` encodes map entries in iteration order, so a
//! `HashMap` would make the encoded bytes (and the text dump) differ from run to run for the same
//! witness, which breaks the project's "same input, same bytes out" rule. A `BTreeMap` encodes
//! entries sorted by key, prints them in the order protobuf text printers use, and compares
//! and debug-prints deterministically. (The hash does not depend on either: it sorts entries by
//! key hash.)
//!
//! `google.protobuf.*Value` wrappers are `Option<i32>`, `Option<f64>` and so on, using the
//! `prost::Message` impls that `prost` ships for those primitives (exactly what `prost-build`
//! generates): `None` is an absent wrapper, `Some(0)` a present wrapper holding zero.

use std::collections::BTreeMap;

/// One observed API call.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Witness {
    #[prost(message, optional, tag = "1")]
    pub method: Option<Method>,
}

/// A collection of methods, as written by the spec tooling.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ApiSpec {
    #[prost(message, repeated, tag = "1")]
    pub methods: Vec<Method>,
    #[prost(btree_map = "string, string", tag = "2")]
    pub tags: BTreeMap<String, String>,
}

/// A method: its id, its arguments and responses (each keyed by the hash of its `Data`) and
/// protocol metadata.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Method {
    #[prost(message, optional, tag = "1")]
    pub id: Option<MethodId>,
    /// Keyed by the text form of the hash of the `Data` value.
    #[prost(btree_map = "string, message", tag = "2")]
    pub args: BTreeMap<String, Data>,
    /// Keyed by the text form of the hash of the `Data` value.
    #[prost(btree_map = "string, message", tag = "3")]
    pub responses: BTreeMap<String, Data>,
    #[prost(message, optional, tag = "4")]
    pub meta: Option<MethodMeta>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct MethodId {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(enumeration = "ApiType", tag = "2")]
    pub api_type: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum ApiType {
    Grpc = 0,
    HttpRest = 1,
}

impl ApiType {
    /// The value's name in the schema (as the text format writes it).
    pub fn as_str_name(self) -> &'static str {
        match self {
            ApiType::Grpc => "GRPC",
            ApiType::HttpRest => "HTTP_REST",
        }
    }

    /// The value with that schema name.
    pub fn from_str_name(s: &str) -> Option<Self> {
        match s {
            "GRPC" => Some(ApiType::Grpc),
            "HTTP_REST" => Some(ApiType::HttpRest),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct MethodMeta {
    #[prost(oneof = "method_meta::Meta", tags = "1, 2")]
    pub meta: Option<method_meta::Meta>,
}

pub mod method_meta {
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum Meta {
        #[prost(message, tag = "1")]
        Grpc(super::GrpcMethodMeta),
        #[prost(message, tag = "2")]
        Http(super::HttpMethodMeta),
    }
}

#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct GrpcMethodMeta {}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct HttpMethodMeta {
    #[prost(string, tag = "1")]
    pub method: String,
    #[prost(string, tag = "2")]
    pub path_template: String,
    #[prost(string, tag = "3")]
    pub host: String,
    /// Milliseconds; not part of the hash.
    #[prost(float, tag = "4")]
    pub processing_latency: f32,
}

/// One value: a primitive, a struct, a list, an optional or a choice, with where it was seen.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Data {
    #[prost(oneof = "data::Value", tags = "1, 2, 3, 4, 6")]
    pub value: Option<data::Value>,
    #[prost(message, optional, tag = "5")]
    pub meta: Option<DataMeta>,
    #[prost(bool, tag = "7")]
    pub nullable: bool,
    /// Not part of the hash.
    #[prost(btree_map = "string, message", tag = "8")]
    pub example_values: BTreeMap<String, ExampleValue>,
}

pub mod data {
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "1")]
        Primitive(super::Primitive),
        #[prost(message, tag = "2")]
        Struct(super::Struct),
        #[prost(message, tag = "3")]
        List(super::List),
        #[prost(message, tag = "4")]
        Optional(super::Optional),
        #[prost(message, tag = "6")]
        Oneof(super::OneOf),
    }
}

#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct DataMeta {
    #[prost(oneof = "data_meta::Meta", tags = "1, 2")]
    pub meta: Option<data_meta::Meta>,
}

pub mod data_meta {
    #[derive(Clone, PartialEq, Eq, Hash, ::prost::Oneof)]
    pub enum Meta {
        #[prost(message, tag = "1")]
        Grpc(super::GrpcMeta),
        #[prost(message, tag = "2")]
        Http(super::HttpMeta),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, ::prost::Message)]
pub struct GrpcMeta {}

/// Where in an HTTP exchange a value was seen.
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct HttpMeta {
    #[prost(oneof = "http_meta::Location", tags = "1, 2, 3, 4, 5, 6, 8, 9")]
    pub location: Option<http_meta::Location>,
    /// 0: an argument (request side); -1: the default response; else the status code.
    #[prost(int32, tag = "7")]
    pub response_code: i32,
}

pub mod http_meta {
    #[derive(Clone, PartialEq, Eq, Hash, ::prost::Oneof)]
    pub enum Location {
        #[prost(message, tag = "1")]
        Path(super::HttpPath),
        #[prost(message, tag = "2")]
        Query(super::HttpQuery),
        #[prost(message, tag = "3")]
        Header(super::HttpHeader),
        #[prost(message, tag = "4")]
        Cookie(super::HttpCookie),
        #[prost(message, tag = "5")]
        Body(super::HttpBody),
        #[prost(message, tag = "6")]
        Empty(super::HttpEmpty),
        #[prost(message, tag = "8")]
        Auth(super::HttpAuth),
        #[prost(message, tag = "9")]
        Multipart(super::HttpMultipart),
    }
}

#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct HttpPath {
    #[prost(string, tag = "1")]
    pub key: String,
}

#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct HttpQuery {
    #[prost(string, tag = "1")]
    pub key: String,
}

#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct HttpHeader {
    #[prost(string, tag = "1")]
    pub key: String,
}

#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct HttpCookie {
    #[prost(string, tag = "1")]
    pub key: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, ::prost::Message)]
pub struct HttpEmpty {}

#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct HttpMultipart {
    /// "form-data" or "mixed".
    #[prost(string, tag = "1")]
    pub r#type: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, ::prost::Message)]
pub struct HttpAuth {
    #[prost(enumeration = "http_auth::HttpAuthType", tag = "1")]
    pub r#type: i32,
}

pub mod http_auth {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum HttpAuthType {
        Unknown = 0,
        Basic = 1,
        Bearer = 2,
    }

    impl HttpAuthType {
        pub fn as_str_name(self) -> &'static str {
            match self {
                HttpAuthType::Unknown => "UNKNOWN",
                HttpAuthType::Basic => "BASIC",
                HttpAuthType::Bearer => "BEARER",
            }
        }

        pub fn from_str_name(s: &str) -> Option<Self> {
            match s {
                "UNKNOWN" => Some(HttpAuthType::Unknown),
                "BASIC" => Some(HttpAuthType::Basic),
                "BEARER" => Some(HttpAuthType::Bearer),
                _ => None,
            }
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct HttpBody {
    #[prost(enumeration = "http_body::ContentType", tag = "1")]
    pub content_type: i32,
    #[prost(string, tag = "2")]
    pub other_type: String,
}

pub mod http_body {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
    #[repr(i32)]
    pub enum ContentType {
        Unknown = 0,
        Json = 1,
        FormUrlEncoded = 2,
        OctetStream = 3,
        Pdf = 4,
        TextPlain = 5,
        Yaml = 6,
        TextHtml = 7,
        Other = 8,
    }

    impl ContentType {
        const NAMES: [(ContentType, &'static str); 9] = [
            (ContentType::Unknown, "UNKNOWN"),
            (ContentType::Json, "JSON"),
            (ContentType::FormUrlEncoded, "FORM_URL_ENCODED"),
            (ContentType::OctetStream, "OCTET_STREAM"),
            (ContentType::Pdf, "PDF"),
            (ContentType::TextPlain, "TEXT_PLAIN"),
            (ContentType::Yaml, "YAML"),
            (ContentType::TextHtml, "TEXT_HTML"),
            (ContentType::Other, "OTHER"),
        ];

        pub fn as_str_name(self) -> &'static str {
            Self::NAMES[self as usize].1
        }

        pub fn from_str_name(s: &str) -> Option<Self> {
            Self::NAMES.iter().find(|(_, n)| *n == s).map(|(v, _)| *v)
        }
    }
}

/// A scalar value (or, generalized, a scalar type).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Primitive {
    #[prost(string, tag = "1")]
    pub type_hint: String,
    #[prost(oneof = "primitive::Value", tags = "2, 3, 4, 5, 6, 7, 8, 9, 10")]
    pub value: Option<primitive::Value>,
    #[prost(message, optional, tag = "11")]
    pub akita_annotations: Option<AkitaAnnotations>,
    #[prost(bool, tag = "12")]
    pub contains_random_value: bool,
    #[prost(btree_map = "string, bool", tag = "13")]
    pub formats: BTreeMap<String, bool>,
    #[prost(string, tag = "14")]
    pub format_kind: String,
}

pub mod primitive {
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "2")]
        BoolValue(super::Bool),
        #[prost(message, tag = "3")]
        BytesValue(super::Bytes),
        #[prost(message, tag = "4")]
        StringValue(super::Str),
        #[prost(message, tag = "5")]
        Int32Value(super::Int32),
        #[prost(message, tag = "6")]
        Int64Value(super::Int64),
        #[prost(message, tag = "7")]
        Uint32Value(super::Uint32),
        #[prost(message, tag = "8")]
        Uint64Value(super::Uint64),
        #[prost(message, tag = "9")]
        DoubleValue(super::Double),
        #[prost(message, tag = "10")]
        FloatValue(super::Float),
    }
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Bool {
    #[prost(message, optional, tag = "1")]
    pub r#type: Option<BoolType>,
    #[prost(bool, tag = "2")]
    pub value: bool,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct BoolType {
    #[prost(bool, repeated, tag = "1")]
    pub fixed_values: Vec<bool>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Bytes {
    #[prost(message, optional, tag = "1")]
    pub r#type: Option<BytesType>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct BytesType {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub fixed_values: Vec<Vec<u8>>,
}

/// `api_spec.String`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Str {
    #[prost(message, optional, tag = "1")]
    pub r#type: Option<StringType>,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct StringType {
    #[prost(string, repeated, tag = "1")]
    pub fixed_values: Vec<String>,
    #[prost(string, tag = "2")]
    pub regex: String,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Int32 {
    #[prost(message, optional, tag = "1")]
    pub r#type: Option<Int32Type>,
    #[prost(int32, tag = "2")]
    pub value: i32,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Int32Type {
    #[prost(int32, repeated, tag = "1")]
    pub fixed_values: Vec<i32>,
    /// `google.protobuf.Int32Value`.
    #[prost(message, optional, tag = "2")]
    pub min: Option<i32>,
    /// `google.protobuf.Int32Value`.
    #[prost(message, optional, tag = "3")]
    pub max: Option<i32>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Int64 {
    #[prost(message, optional, tag = "1")]
    pub r#type: Option<Int64Type>,
    #[prost(int64, tag = "2")]
    pub value: i64,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Int64Type {
    #[prost(int64, repeated, tag = "1")]
    pub fixed_values: Vec<i64>,
    /// `google.protobuf.Int64Value`.
    #[prost(message, optional, tag = "2")]
    pub min: Option<i64>,
    /// `google.protobuf.Int64Value`.
    #[prost(message, optional, tag = "3")]
    pub max: Option<i64>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Uint32 {
    #[prost(message, optional, tag = "1")]
    pub r#type: Option<Uint32Type>,
    #[prost(uint32, tag = "2")]
    pub value: u32,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Uint32Type {
    #[prost(uint32, repeated, tag = "1")]
    pub fixed_values: Vec<u32>,
    /// `google.protobuf.UInt32Value`.
    #[prost(message, optional, tag = "2")]
    pub min: Option<u32>,
    /// `google.protobuf.UInt32Value`.
    #[prost(message, optional, tag = "3")]
    pub max: Option<u32>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Uint64 {
    #[prost(message, optional, tag = "1")]
    pub r#type: Option<Uint64Type>,
    #[prost(uint64, tag = "2")]
    pub value: u64,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Uint64Type {
    #[prost(uint64, repeated, tag = "1")]
    pub fixed_values: Vec<u64>,
    /// `google.protobuf.UInt64Value`.
    #[prost(message, optional, tag = "2")]
    pub min: Option<u64>,
    /// `google.protobuf.UInt64Value`.
    #[prost(message, optional, tag = "3")]
    pub max: Option<u64>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Double {
    #[prost(message, optional, tag = "1")]
    pub r#type: Option<DoubleType>,
    #[prost(double, tag = "2")]
    pub value: f64,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct DoubleType {
    #[prost(double, repeated, tag = "1")]
    pub fixed_values: Vec<f64>,
    /// `google.protobuf.DoubleValue`.
    #[prost(message, optional, tag = "2")]
    pub min: Option<f64>,
    /// `google.protobuf.DoubleValue`.
    #[prost(message, optional, tag = "3")]
    pub max: Option<f64>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Float {
    #[prost(message, optional, tag = "1")]
    pub r#type: Option<FloatType>,
    #[prost(float, tag = "2")]
    pub value: f32,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct FloatType {
    #[prost(float, repeated, tag = "1")]
    pub fixed_values: Vec<f32>,
    /// `google.protobuf.FloatValue`.
    #[prost(message, optional, tag = "2")]
    pub min: Option<f32>,
    /// `google.protobuf.FloatValue`.
    #[prost(message, optional, tag = "3")]
    pub max: Option<f32>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct AkitaAnnotations {
    #[prost(bool, tag = "1")]
    pub is_free: bool,
    #[prost(bool, tag = "2")]
    pub is_sensitive: bool,
    #[prost(message, optional, tag = "3")]
    pub format_option: Option<FormatOption>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct FormatOption {
    #[prost(oneof = "format_option::Format", tags = "1")]
    pub format: Option<format_option::Format>,
}

pub mod format_option {
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum Format {
        #[prost(string, tag = "1")]
        StringFormat(String),
    }
}

/// An object: named fields, or (when `map_type` is set) a map described by key and value types.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Struct {
    #[prost(btree_map = "string, message", tag = "1")]
    pub fields: BTreeMap<String, Data>,
    #[prost(message, optional, tag = "2")]
    pub map_type: Option<MapData>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct MapData {
    #[prost(message, optional, boxed, tag = "1")]
    pub key: Option<Box<Data>>,
    #[prost(message, optional, boxed, tag = "2")]
    pub value: Option<Box<Data>>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct List {
    #[prost(message, repeated, tag = "1")]
    pub elems: Vec<Data>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Optional {
    #[prost(oneof = "optional::Value", tags = "1, 2")]
    pub value: Option<optional::Value>,
}

pub mod optional {
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "1")]
        Data(Box<super::Data>),
        #[prost(message, tag = "2")]
        None(super::NoneValue),
    }
}

/// `api_spec.None`: the optional value was absent.
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct NoneValue {}

/// A choice between values, keyed by the hash of each option's `Data`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct OneOf {
    /// Keyed by the text form of the hash of the `Data` value.
    #[prost(btree_map = "string, message", tag = "1")]
    pub options: BTreeMap<String, Data>,
    #[prost(bool, tag = "2")]
    pub potential_conflict: bool,
}

#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct ExampleValue {}
