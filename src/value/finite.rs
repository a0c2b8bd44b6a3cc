//! Whether a value about to be serialized holds a float with no JSON form (NaN or an infinity).
//!
//! Why a walk of its own: serde_json writes such a float as `null`, without an error, so a value
//! holding one would be stored as something else than what was given. The walk stops at the first
//! one it finds; like the serialization after it, it grows the stack as deep values need.

use std::fmt;

use serde::ser::{self, Serialize};

/// Whether `value` holds an `f32` or `f64` that is NaN or infinite, anywhere inside it.
pub(crate) fn has_non_finite_float<T: Serialize + ?Sized>(value: &T) -> bool {
    let mut finder = Finder { found: false };
    // Any error but the finder's own (a `Serialize` impl that fails) is left for the real
    // serialization to report.
    let _ = value.serialize(serde_stacker::Serializer::new(&mut finder));
    finder.found
}

/// A serializer that produces nothing and only looks at floats.
struct Finder {
    found: bool,
}

impl Finder {
    fn float(&mut self, finite: bool) -> Result<(), Stop> {
        if finite {
            Ok(())
        } else {
            self.found = true;
            Err(Stop)
        }
    }
}

/// Ends the walk early: a non-finite float was found, or the value's own `Serialize` failed.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stopped")
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Stop
    }
}

type Done = Result<(), Stop>;

impl ser::Serializer for &mut Finder {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_f32(self, v: f32) -> Done {
        self.float(v.is_finite())
    }
    fn serialize_f64(self, v: f64) -> Done {
        self.float(v.is_finite())
    }
    fn serialize_bool(self, _: bool) -> Done {
        Ok(())
    }
    fn serialize_i8(self, _: i8) -> Done {
        Ok(())
    }
    fn serialize_i16(self, _: i16) -> Done {
        Ok(())
    }
    fn serialize_i32(self, _: i32) -> Done {
        Ok(())
    }
    fn serialize_i64(self, _: i64) -> Done {
        Ok(())
    }
    fn serialize_i128(self, _: i128) -> Done {
        Ok(())
    }
    fn serialize_u8(self, _: u8) -> Done {
        Ok(())
    }
    fn serialize_u16(self, _: u16) -> Done {
        Ok(())
    }
    fn serialize_u32(self, _: u32) -> Done {
        Ok(())
    }
    fn serialize_u64(self, _: u64) -> Done {
        Ok(())
    }
    fn serialize_u128(self, _: u128) -> Done {
        Ok(())
    }
    fn serialize_char(self, _: char) -> Done {
        Ok(())
    }
    fn serialize_str(self, _: &str) -> Done {
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Done {
        Ok(())
    }
    fn serialize_none(self) -> Done {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Done {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Done {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Done {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Done {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Done {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Done {
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Stop> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Stop> {
        Ok(self)
    }
}

/// The compound serializers: each element, field or entry is walked the same way.
macro_rules! walk_each {
    ($($trait:ident :: $method:ident ( $($name:ty),* );)*) => {$(
        impl ser::$trait for &mut Finder {
            type Ok = ();
            type Error = Stop;
            fn $method<T: Serialize + ?Sized>(&mut self, $(_: $name,)* value: &T) -> Done {
                value.serialize(&mut **self)
            }
            fn end(self) -> Done {
                Ok(())
            }
        }
    )*};
}

walk_each! {
    SerializeSeq::serialize_element();
    SerializeTuple::serialize_element();
    SerializeTupleStruct::serialize_field();
    SerializeTupleVariant::serialize_field();
    SerializeStruct::serialize_field(&'static str);
    SerializeStructVariant::serialize_field(&'static str);
}

impl ser::SerializeMap for &mut Finder {
    type Ok = ();
    type Error = Stop;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Done {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Done {
        value.serialize(&mut **self)
    }
    fn end(self) -> Done {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    struct Reading {
        name: &'static str,
        values: Vec<(u8, Option<f64>)>,
    }

    #[test]
    fn finds_a_non_finite_float_anywhere_and_nothing_else() {
        assert!(has_non_finite_float(&f64::NAN));
        assert!(has_non_finite_float(&f32::INFINITY));
        assert!(has_non_finite_float(&vec![1.0, f64::NEG_INFINITY]));
        let deep = Reading {
            name: "x",
            values: vec![(1, Some(2.0)), (2, Some(f64::NAN))],
        };
        assert!(has_non_finite_float(&deep));
        assert!(has_non_finite_float(&BTreeMap::from([("k", f64::NAN)])));
        let fine = Reading {
            name: "x",
            values: vec![(1, None), (2, Some(-0.0)), (3, Some(f64::MAX))],
        };
        assert!(!has_non_finite_float(&fine));
        assert!(!has_non_finite_float(
            &serde_json::json!({"a": [1.5, null]})
        ));
    }
}
