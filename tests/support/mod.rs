//! What the integration tests share: the generated operations ([`ops`]), the reference model that
//! says what each one must answer ([`reference`]), and the driver that runs them on a real store
//! ([`drive`]).
//!
//! To cover a new command: add a variant to [`ops::Op`] (with its generator and its printed form),
//! one arm to [`reference::Model::step`] and one to [`drive::run`].

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod drive;
pub mod ops;
pub mod reference;
