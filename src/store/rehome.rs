//! Search entries after a cluster's slots move between masters (a reshard or a rebalance; a
//! failover keeps every master's slots and changes nothing here).
//!
//! Each master holds the index of the documents it stores (`store::shards`). `MIGRATE` moves a
//! slot's hashes to their new master, but RediSearch 1.x indexes by hand (`FT.ADDHASH`): the new
//! master's index lacks them, and the old master's index still lists them, whose search then
//! counts documents it cannot load. RediSearch 2.x follows the keys by itself (it indexes a
//! restored key and forgets a deleted one) and needs only its index to exist.
//!
//! So when a node reads slots that differ from what it knew, it makes sure every master has its
//! indexes (a master's index name can change when it gains a slot whose tag sorts first) and, on
//! 1.x, re-homes the entries of every hash that now lives on a master with another index than
//! before: `FT.DEL` from the old index, `FT.ADDHASH` into the new one. Only hashes found on their
//! new master are touched (a `SCAN` of that master, keys of the moved slots), so a stale read of
//! the slots re-homes nothing. Every node may see the change; a lock per index lets one do it,
//! and a mark left on the index (`rehomed:<index>`, naming the move) spares the nodes that read
//! the same move later: a second pass would write the index again, maybe while an operator
//! moves the index's own slot (DEPLOY.md).

use std::sync::Arc;

use super::conn::{slot_of, Topology, SLOTS};
use super::{keys, Store};
use crate::error::Result;

/// How long one node holds an index's re-homing to itself.
const REHOME_LOCK_SECS: u64 = 300;
/// How long an index remembers the move whose entries were re-homed into it, so that a node
/// reading the same move later does not do it again.
const REHOMED_MARK_SECS: u64 = 3600;

/// Names the work of one move for one master: FNV-1a of the moved slots bound for it, with the
/// index each leaves and the one it joins. Nodes that read the same move name it alike.
fn move_mark(moved: &[Option<(String, usize, String)>], master: usize) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (slot, m) in moved.iter().enumerate() {
        if let Some((from, n, into)) = m {
            if *n == master {
                eat(&(slot as u64).to_le_bytes());
                eat(from.as_bytes());
                eat(b">");
                eat(into.as_bytes());
            }
        }
    }
    format!("{h:016x}")
}

/// The master (index in `masters`) serving each slot, if any.
fn owners(t: &Topology) -> Vec<Option<usize>> {
    let mut out = vec![None; usize::from(SLOTS)];
    for (i, m) in t.masters.iter().enumerate() {
        for &(a, b) in &m.slots {
            for s in a..=b {
                out[usize::from(s)] = Some(i);
            }
        }
    }
    out
}

/// For each slot whose documents now belong in another index than before: (the old index, the
/// new master, the new index).
fn moved_slots(base: &str, old: &Topology, new: &Topology) -> Vec<Option<(String, usize, String)>> {
    let old_names = old.indexes(base);
    let new_names = new.indexes(base);
    owners(old)
        .into_iter()
        .zip(owners(new))
        .map(|(o, n)| match (o, n) {
            (Some(o), Some(n)) if old_names[o] != new_names[n] => {
                Some((old_names[o].clone(), n, new_names[n].clone()))
            }
            _ => None,
        })
        .collect()
}

impl Store {
    /// After the node read new slots (`refresh_topology`): indexes on every master, and on
    /// RediSearch 1.x the entries of moved hashes re-homed. Answers how many were.
    pub(crate) async fn after_slots_moved(
        &self,
        old: Arc<Topology>,
        new: Arc<Topology>,
    ) -> Result<usize> {
        let Some(version) = self.search else {
            return Ok(0);
        };
        if old.masters.is_empty() {
            return Ok(0);
        }
        super::setup::prepare(self).await?;
        if !version.needs_addhash() {
            return Ok(0);
        }
        let mut rehomed = 0;
        for (base, prefix) in [
            (keys::IDX_USERS, keys::USER_PREFIX),
            (keys::messages_index(), keys::MESSAGE_PREFIX),
        ] {
            rehomed += self.rehome_index(base, prefix, &old, &new).await?;
        }
        Ok(rehomed)
    }

    async fn rehome_index(
        &self,
        base: &str,
        prefix: &str,
        old: &Topology,
        new: &Topology,
    ) -> Result<usize> {
        let moved = moved_slots(base, old, new);
        let mut conn = self.shared();
        let mut rehomed = 0;
        for (i, master) in new.masters.iter().enumerate() {
            if !moved.iter().flatten().any(|(_, n, _)| *n == i) {
                continue;
            }
            let new_index = new.index_on(base, i);
            let done_key = keys::rehomed_mark(&new_index);
            let mark = move_mark(&moved, i);
            let done: Option<String> = redis::cmd("GET")
                .arg(&done_key)
                .query_async(&mut conn)
                .await?;
            if done.as_deref() == Some(mark.as_str()) {
                log::info!("{new_index}: another node re-homed the entries of this move");
                continue;
            }
            let rehome = |key: String| {
                let mut c = conn.clone();
                let (new_index, moved) = (&new_index, &moved);
                async move {
                    let Some((old_index, n, _)) = &moved[usize::from(slot_of(&key))] else {
                        return false;
                    };
                    if *n != i {
                        return false;
                    }
                    // Absent from the old index already: nothing to forget there.
                    let _: redis::RedisResult<redis::Value> = redis::cmd("FT.DEL")
                        .arg(old_index)
                        .arg(&key)
                        .query_async(&mut c)
                        .await;
                    super::posting::ADDHASH_SCRIPT
                        .key(new_index)
                        .arg(&key)
                        .arg("REPLACE")
                        .invoke_async::<redis::Value>(&mut c)
                        .await
                        .is_ok()
                }
            };
            let lock = (keys::rehome_lock(&new_index), REHOME_LOCK_SECS);
            let Some(n) =
                super::setup::each_hash_on_master(self, master, prefix, lock, rehome).await?
            else {
                log::info!("{new_index}: another node is re-homing its entries");
                continue;
            };
            rehomed += n;
            let _: redis::RedisResult<()> = redis::cmd("SET")
                .arg(&done_key)
                .arg(&mark)
                .arg("EX")
                .arg(REHOMED_MARK_SECS)
                .query_async(&mut conn)
                .await;
            // The indexes these entries left forget their own marks: a later move back into
            // them is new work, even when it names the same slots as an earlier one.
            let left: std::collections::BTreeSet<&String> = moved
                .iter()
                .flatten()
                .filter(|(_, n, _)| *n == i)
                .map(|(from, _, _)| from)
                .collect();
            for from in left {
                let _: redis::RedisResult<()> = redis::cmd("DEL")
                    .arg(keys::rehomed_mark(from))
                    .query_async(&mut conn)
                    .await;
            }
        }
        Ok(rehomed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conn::Master;

    fn three(moved: Option<u16>) -> Topology {
        let m = |port, slots: Vec<(u16, u16)>| Master {
            host: "h".into(),
            port,
            slots,
        };
        let mut t = Topology {
            masters: vec![
                m(1, vec![(0, 5460)]),
                m(2, vec![(5461, 10922)]),
                m(3, vec![(10923, 16383)]),
            ],
        };
        if let Some(s) = moved {
            // Slot s goes from master 2 to master 3.
            t.masters[1].slots = vec![(5461, s - 1), (s + 1, 10922)];
            t.masters[2].slots = vec![(s, s), (10923, 16383)];
        }
        t
    }

    #[test]
    fn only_the_moved_slot_is_re_homed() {
        let base = "idx:messages";
        let (old, new) = (three(None), three(Some(9991)));
        let moved = moved_slots(base, &old, &new);
        let which: Vec<usize> = (0..moved.len()).filter(|&s| moved[s].is_some()).collect();
        assert_eq!(which, [9991]);
        let (from, to, into) = moved[9991].clone().unwrap();
        assert_eq!(
            (from, to, into),
            (old.index_on(base, 1), 2, new.index_on(base, 2))
        );
        // A failover (another address, the same slots) moves nothing.
        let mut failed_over = three(None);
        failed_over.masters[1].port = 9;
        assert!(moved_slots(base, &old, &failed_over)
            .iter()
            .all(Option::is_none));
    }

    #[test]
    fn a_move_is_named_alike_by_every_node_and_apart_from_others() {
        let base = "idx:messages";
        let there = moved_slots(base, &three(None), &three(Some(9991)));
        let again = moved_slots(base, &three(None), &three(Some(9991)));
        assert_eq!(move_mark(&there, 2), move_mark(&again, 2));
        // Another slot, or the way back, is other work.
        let other = moved_slots(base, &three(None), &three(Some(9000)));
        assert_ne!(move_mark(&there, 2), move_mark(&other, 2));
        let back = moved_slots(base, &three(Some(9991)), &three(None));
        assert_ne!(move_mark(&there, 2), move_mark(&back, 1));
        // A master no slot moves to has nothing to name.
        assert_eq!(move_mark(&there, 0), move_mark(&other, 0));
    }
}
