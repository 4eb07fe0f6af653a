//! A minimal protobuf wire-format reader: enough to decode the requests the
//! core validates (and `google.protobuf.Struct` / `Value` as JSON) straight
//! from the bytes, with no generated code and no Python objects.

use serde_json::{Map, Number, Value};

use crate::error::{CoreError, ErrorKind};

#[cold]
pub(crate) fn malformed(what: &str) -> CoreError {
    CoreError::new(ErrorKind::MalformedRequest(format!(
        "the request bytes are not the expected message: {what}"
    )))
}

/// A minimal protobuf wire reader over a byte slice.
pub(crate) struct Wire<'a> {
    bytes: &'a [u8],
}

impl<'a> Wire<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn varint(&mut self) -> Result<u64, CoreError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .bytes
                .split_first()
                .ok_or_else(|| malformed("truncated varint"))?;
            self.bytes = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(malformed("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CoreError> {
        if n > self.bytes.len() {
            return Err(malformed("truncated field"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    /// The next field as (number, wire type, payload for length-delimited
    /// and fixed fields, or the varint value).
    pub(crate) fn field(&mut self) -> Result<Option<(u64, Field<'a>)>, CoreError> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => Field::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| malformed("length"))?;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed32
            }
            _ => return Err(malformed("unsupported wire type")),
        };
        Ok(Some((key >> 3, field)))
    }
}

pub(crate) enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    /// A 32-bit field: none of the fields read here, skipped.
    Fixed32,
    Bytes(&'a [u8]),
}

/// Calls `f(number, payload)` for every length-delimited field of a message
/// (strings, bytes, nested messages), skipping the other wire types.
pub(crate) fn each_message<'a>(
    bytes: &'a [u8],
    mut f: impl FnMut(u64, &'a [u8]) -> Result<(), CoreError>,
) -> Result<(), CoreError> {
    let mut wire = Wire::new(bytes);
    while let Some((number, field)) = wire.field()? {
        if let Field::Bytes(payload) = field {
            f(number, payload)?;
        }
    }
    Ok(())
}

pub(crate) fn string(bytes: &[u8]) -> Result<String, CoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed("a string is not UTF-8"))
}

/// `google.protobuf.Struct` as a JSON object.
pub(crate) fn decode_struct(bytes: &[u8], depth: usize) -> Result<Map<String, Value>, CoreError> {
    let mut map = Map::new();
    let mut wire = Wire::new(bytes);
    while let Some((number, field)) = wire.field()? {
        if let (1, Field::Bytes(entry)) = (number, field) {
            let mut key = String::new();
            let mut value = Value::Null;
            let mut entry = Wire::new(entry);
            while let Some((n, f)) = entry.field()? {
                match (n, f) {
                    (1, Field::Bytes(b)) => key = string(b)?,
                    (2, Field::Bytes(b)) => value = decode_value(b, depth + 1)?,
                    _ => {}
                }
            }
            map.insert(key, value);
        }
    }
    Ok(map)
}

/// `google.protobuf.Value` as JSON.
pub(crate) fn decode_value(bytes: &[u8], depth: usize) -> Result<Value, CoreError> {
    if depth > 64 {
        return Err(malformed("values nest too deep"));
    }
    let mut value = Value::Null;
    let mut wire = Wire::new(bytes);
    while let Some((number, field)) = wire.field()? {
        value = match (number, field) {
            (1, Field::Varint(_)) => Value::Null,
            (2, Field::Fixed64(bits)) => {
                Number::from_f64(f64::from_bits(bits)).map_or(Value::Null, Value::Number)
            }
            (3, Field::Bytes(b)) => Value::String(string(b)?),
            (4, Field::Varint(v)) => Value::Bool(v != 0),
            (5, Field::Bytes(b)) => Value::Object(decode_struct(b, depth + 1)?),
            (6, Field::Bytes(b)) => {
                let mut items = Vec::new();
                let mut list = Wire::new(b);
                while let Some((n, f)) = list.field()? {
                    if let (1, Field::Bytes(item)) = (n, f) {
                        items.push(decode_value(item, depth + 1)?);
                    }
                }
                Value::Array(items)
            }
            _ => value,
        };
    }
    Ok(value)
}
