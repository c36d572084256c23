//! chatnode on a Redis Cluster of six local redis-server processes (three masters, three
//! replicas): the connection, its routing, and the cluster's shape as the node sees it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chatnode::store::conn::slot_of;
use chatnode::store::Store;
use common::cluster::{cluster_settings, TestCluster};

/// The node's store reads three masters whose slot ranges cover every slot, and the per-master
/// index names it computes land on the master they are meant for (as Redis itself computes it).
#[actix_rt::test]
async fn store_sees_three_masters_and_routes_by_slot() {
    let cluster = TestCluster::start().await;
    let settings = Arc::new(cluster_settings(&cluster.seeds()));
    let store = Store::connect("", settings)
        .await
        .expect("the store connects");
    assert_eq!(store.mode(), "cluster");
    let topology = store.topology();
    assert_eq!(topology.masters.len(), 3);
    let mut ports: Vec<u16> = topology.masters.iter().map(|m| m.port).collect();
    ports.sort();
    assert_eq!(ports, cluster.master_ports().await);
    let covered: u32 = topology
        .masters
        .iter()
        .flat_map(|m| m.slots.iter())
        .map(|&(a, b)| (b - a + 1) as u32)
        .sum();
    assert_eq!(covered, 16384);

    let mut conn = store.conn().await.unwrap();
    for (i, master) in topology.masters.iter().enumerate() {
        let name = topology.index_on("idx:messages", i);
        // Redis agrees on the slot, and the master that serves it is this one.
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&name)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(slot, slot_of(&name), "{name}");
        assert_eq!(cluster.master_of(&name).await, master.port, "{name}");
        // A key written through the shared connection is found by SCAN on its master only.
        let key = format!("probe:{name}");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .query_async(&mut conn)
            .await
            .unwrap();
        for (j, other) in topology.masters.iter().enumerate() {
            let (_, found): (u64, Vec<String>) = conn
                .query_on_master(
                    redis::cmd("SCAN")
                        .arg(0)
                        .arg("MATCH")
                        .arg(&key)
                        .arg("COUNT")
                        .arg(10_000),
                    other,
                )
                .await
                .unwrap();
            assert_eq!(found.contains(&key), i == j, "{key} on master {j}");
        }
    }
    // WAIT routed by key reaches one master (its one replica), not all of them.
    let acked: i64 = conn
        .query_on_key(redis::cmd("WAIT").arg(1).arg(2000), "probe:x")
        .await
        .unwrap();
    assert_eq!(acked, 1);
    drop(cluster);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
