pub use mytracks_codec;
