//! SQLite is durable by default: what the hub answered for survives a power cut, so every
//! connection of a file store syncs each commit (`synchronous=FULL`, DESIGN.md §8).

use qrhub::store::SqliteStore;

#[tokio::test]
async fn every_connection_of_a_file_store_syncs_each_commit() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}/qrhub.db", dir.path().display());
    let store = SqliteStore::connect(&url).await.expect("store opens");
    // 2 is FULL (0 OFF, 1 NORMAL, 3 EXTRA).
    assert_eq!(store.synchronous().await.expect("pragma"), (2, 2));
}
