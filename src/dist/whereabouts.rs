//! What a rank's MPI watchdog says about the other ranks when a collective
//! hangs (`crate::dist::mpi`): the collectives' names and the grouping of
//! the ranks' answers into one sentence. Plain data and text, compiled with
//! or without the `mpi` feature, so its tests run in the normal suite.

use std::time::Duration;

/// Names of the collectives, for the watchdog's message (indexed by the
/// constants below).
pub(crate) const OPS: [&str; 5] = [
    "all_gather",
    "all_reduce",
    "reduce_scatter",
    "barrier",
    "(none)",
];
pub(crate) const ALL_GATHER: usize = 0;
pub(crate) const ALL_REDUCE: usize = 1;
pub(crate) const REDUCE_SCATTER: usize = 2;
pub(crate) const BARRIER: usize = 3;
pub(crate) const NONE: usize = 4;

/// Where a rank is, as its watchdog tells a probing rank:
/// `[collective number, collective (index into OPS), ms waited inside it
/// + 1, or 0 when outside MPI]`.
pub(crate) type Whereabouts = [u64; 3];

/// "rank 1" / "ranks 1, 3".
fn ranks_text(ranks: &[usize]) -> String {
    let list: Vec<String> = ranks.iter().map(|r| r.to_string()).collect();
    let s = if ranks.len() == 1 { "" } else { "s" };
    format!("rank{s} {}", list.join(", "))
}

/// What the probing rank (at `mine`) learned of the others, grouped by
/// what they said: "rank 1 did not answer within 5 s (hung or stopped);
/// ranks 2, 3 waited in the same collective".
pub(crate) fn whereabouts_text(
    mine: Whereabouts,
    answers: &[Option<Whereabouts>],
    rank: i32,
    patience: Duration,
) -> String {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (r, a) in answers.iter().enumerate() {
        if r as i32 == rank {
            continue;
        }
        let what = match *a {
            None => format!(
                "did not answer within {} s (hung or stopped)",
                patience.as_secs()
            ),
            Some([seq, _, 0]) if seq < mine[0] => format!(
                "had not reached this collective (computing outside MPI, {} collective(s) behind)",
                mine[0] - seq
            ),
            Some([seq, _, 0]) => format!("was outside MPI after collective #{seq}"),
            Some([seq, op, _]) if seq == mine[0] && op == mine[1] => {
                "waited in the same collective".to_string()
            }
            Some([seq, op, _]) if seq == mine[0] => format!(
                "waited in MPI {} instead: the ranks' collective calls diverged",
                OPS[(op as usize).min(NONE)]
            ),
            // Another collective number: e.g. still in the previous one,
            // which the hung rank had entered but not finished.
            Some([seq, op, _]) => format!(
                "waited in MPI {} (collective #{seq})",
                OPS[(op as usize).min(NONE)]
            ),
        };
        match groups.iter_mut().find(|(w, _)| *w == what) {
            Some((_, rs)) => rs.push(r),
            None => groups.push((what, vec![r])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(what, rs)| format!("{} {what}", ranks_text(rs)))
        .collect();
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probing rank names each other rank by what it answered, grouping
    /// ranks that said the same.
    #[test]
    fn whereabouts_name_the_ranks_in_the_way() {
        let mine = [42, ALL_REDUCE as u64, 6_000];
        let answers = [
            Some(mine),                           // rank 0: the prober itself
            None,                                 // stopped
            Some([41, BARRIER as u64, 0]),        // computing, behind
            Some([42, ALL_REDUCE as u64, 5_000]), // waiting with the prober
            None,                                 // stopped
            Some([43, ALL_GATHER as u64, 10]),    // in another collective
            Some([42, ALL_REDUCE as u64, 0]),     // outside MPI, not behind
            Some([42, BARRIER as u64, 10]),       // same number, other collective
        ];
        let text = whereabouts_text(mine, &answers, 0, Duration::from_secs(5));
        assert_eq!(
            text,
            "ranks 1, 4 did not answer within 5 s (hung or stopped); \
             rank 2 had not reached this collective (computing outside MPI, 1 collective(s) behind); \
             rank 3 waited in the same collective; \
             rank 5 waited in MPI all_gather (collective #43); \
             rank 6 was outside MPI after collective #42; \
             rank 7 waited in MPI barrier instead: the ranks' collective calls diverged"
        );
    }
}
