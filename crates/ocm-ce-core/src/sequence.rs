//! Snowflake sequence ids of agent status events (bwmarrin/snowflake layout, node 1) and Go's
//! comparison rule (`CompareSnowflakeSequenceIDs`).

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::SequenceIdError;

/// Snowflake epoch: 2010-11-04T01:42:54.657Z in Unix milliseconds.
pub const EPOCH_MS: i64 = 1_288_834_974_657;
const NODE_BITS: u32 = 10;
const STEP_BITS: u32 = 12;
const STEP_MASK: i64 = (1 << STEP_BITS) - 1;
const NODE_MASK: i64 = ((1 << NODE_BITS) - 1) << STEP_BITS;

/// The parts of a sequence id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceParts {
    /// Unix milliseconds.
    pub time_ms: i64,
    /// Generator node (0–1023).
    pub node: i64,
    /// Counter within the millisecond (0–4095).
    pub step: i64,
}

impl SequenceParts {
    /// Decodes an id (two's-complement bits, as Go does for negative ids).
    pub fn of(id: i64) -> Self {
        Self {
            time_ms: (id >> (NODE_BITS + STEP_BITS)) + EPOCH_MS,
            node: (id & NODE_MASK) >> STEP_BITS,
            step: id & STEP_MASK,
        }
    }
}

/// A snowflake id generator. Time is read from a monotonic clock anchored at creation, like Go's.
#[derive(Debug)]
pub struct SequenceGenerator {
    node: i64,
    anchor_ms: i64,
    anchor: Instant,
    state: Mutex<(i64, i64)>,
}

impl SequenceGenerator {
    /// A generator for `node` (the Go agent codecs use node 1).
    pub fn new(node: u16) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis();
        Self {
            node: i64::from(node) & ((1 << NODE_BITS) - 1),
            anchor_ms: i64::try_from(now_ms).unwrap_or(i64::MAX) - EPOCH_MS,
            anchor: Instant::now(),
            state: Mutex::new((-1, 0)),
        }
    }

    fn now_ms(&self) -> i64 {
        self.anchor_ms + i64::try_from(self.anchor.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// The next id: later than every id this generator returned before.
    pub fn next_id(&self) -> i64 {
        let mut st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (last, step) = *st;
        let mut now = self.now_ms();
        let mut next_step = 0;
        if now <= last {
            now = last;
            next_step = (step + 1) & STEP_MASK;
            if next_step == 0 {
                // 4096 ids in this millisecond: move on to the next one (Go waits; the only
                // observable difference is that we never block).
                now = last + 1;
            }
        }
        *st = (now, next_step);
        (now << (NODE_BITS + STEP_BITS)) | (self.node << STEP_BITS) | next_step
    }

    /// [`next_id`](Self::next_id) as the decimal string carried in `sequenceid`.
    pub fn next_string(&self) -> String {
        self.next_id().to_string()
    }
}

fn parse_int(s: &str) -> Result<i64, &'static str> {
    s.parse::<i64>().map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => "value out of range",
        _ => "invalid syntax",
    })
}

/// True when `current` is newer than `last` (Go's rule: an empty `last` makes any non-empty
/// `current` newer; otherwise both must parse and come from the same node; then time, then step).
pub fn is_newer(last: &str, current: &str) -> Result<bool, SequenceIdError> {
    if !current.is_empty() && last.is_empty() {
        return Ok(true);
    }
    let l = parse_int(last).map_err(|reason| SequenceIdError::Last {
        value: last.to_owned(),
        reason,
    })?;
    let c = parse_int(current).map_err(|reason| SequenceIdError::Current {
        value: current.to_owned(),
        reason,
    })?;
    let (l, c) = (SequenceParts::of(l), SequenceParts::of(c));
    if l.node != c.node {
        return Err(SequenceIdError::DifferentNodes {
            last: last.to_owned(),
            current: current.to_owned(),
        });
    }
    if l.time_ms != c.time_ms {
        return Ok(c.time_ms > l.time_ms);
    }
    Ok(c.step > l.step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_decodes_to_node_1() {
        assert_eq!(
            SequenceParts::of(2_125_556_272_668_348_416),
            SequenceParts {
                time_ms: 1_795_607_080_987,
                node: 1,
                step: 0
            }
        );
    }

    #[test]
    fn generated_ids_increase_and_carry_the_node() {
        let g = SequenceGenerator::new(1);
        let mut last = g.next_string();
        for _ in 0..10_000 {
            let next = g.next_string();
            assert_eq!(is_newer(&last, &next), Ok(true), "{last} {next}");
            last = next;
        }
        assert_eq!(SequenceParts::of(g.next_id()).node, 1);
    }

    #[test]
    fn ids_from_the_go_test_compare_as_newer() {
        assert_eq!(is_newer("", "1834773391719010304"), Ok(true));
        assert_eq!(is_newer("1834773391719010304", "1834773613329256448"), Ok(true));
    }
}
