pub mod db;
pub mod hub;
pub mod process;
