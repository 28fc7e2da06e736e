//! Expression that stays on disk: the prepared matrix read block by block through a bounded
//! cache, for files larger than memory.
//!
//! A block is `block_cells` consecutive cells of one condition (in file order), so the sampler
//! ([`crate::sampler`]) can draw a batch from one block and the cache decodes each block once:
//! its rows are read by hyperslabs ([`crate::blocks::RowReader`]), normalised and log1p'd as the
//! in-memory path does, and kept as a dense `(cells, selected genes)` f32 block. Blocks are
//! evicted least recently used when the cache would exceed its budget.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use crate::blocks::RowReader;
use crate::DataError;

/// `data.max_memory`: how much memory the prepared expression may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryBudget {
    /// A quarter of the machine's memory (4 GiB where it cannot be read). A training run
    /// replaces it by the bytes it resolved to (rank 0's under data parallelism), so a resumed
    /// run and `ccfm predict` decide the same way.
    #[default]
    Auto,
    Bytes(u64),
}

/// Binary units, largest first (what sizes are printed in).
const BINARY: [(&str, u64); 4] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
];

/// Decimal units (accepted when read).
const DECIMAL: [(&str, u64); 4] = [
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
];

impl MemoryBudget {
    /// The budget in bytes.
    pub fn bytes(self) -> u64 {
        match self {
            Self::Bytes(b) => b,
            Self::Auto => physical_memory().map_or(4 << 30, |m| m / 4),
        }
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl FromStr for MemoryBudget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        if t == "auto" {
            return Ok(Self::Auto);
        }
        let bad = || {
            format!(
                "`{s}` is not a memory size; write e.g. \"2GiB\", \"512MiB\", \"1.5GB\" or \"auto\""
            )
        };
        let units = BINARY.iter().chain(&DECIMAL).chain(&[("B", 1)]);
        let (number, scale) = units
            .filter_map(|(u, f)| {
                t.strip_suffix(&u.to_ascii_lowercase())
                    .map(|n| (n.trim(), *f))
            })
            .next()
            .unwrap_or((t.as_str(), 1));
        let value: f64 = number.parse().map_err(|_| bad())?;
        let bytes = value * scale as f64;
        if !bytes.is_finite() || bytes < 1.0 || bytes >= u64::MAX as f64 {
            return Err(bad());
        }
        Ok(Self::Bytes(bytes as u64))
    }
}

/// Exact, so that a resolved configuration reads back the same budget: the largest binary
/// unit that divides the size (`"1536MiB"`), else plain bytes.
impl fmt::Display for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = match self {
            Self::Auto => return f.write_str("auto"),
            Self::Bytes(b) => *b,
        };
        match BINARY
            .iter()
            .find(|(_, size)| b >= *size && b.is_multiple_of(*size))
        {
            Some((u, size)) => write!(f, "{}{u}", b / size),
            None => write!(f, "{b}"),
        }
    }
}

/// `bytes` in the largest binary unit that keeps it at or above 1 (`"1.50GiB"`), for reports.
pub fn human_bytes(bytes: u64) -> String {
    match BINARY.iter().find(|(_, size)| bytes >= *size) {
        Some((u, size)) if bytes.is_multiple_of(*size) => format!("{}{u}", bytes / size),
        Some((u, size)) => format!("{:.2}{u}", bytes as f64 / *size as f64),
        None => format!("{bytes}B"),
    }
}

impl serde::Serialize for MemoryBudget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for MemoryBudget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where the prepared expression lives.
#[derive(Debug, Clone)]
pub enum Expression {
    /// Row-major `(cells, genes)` log1p values.
    InMemory(Vec<f32>),
    /// Read from the file block by block.
    Streamed(StreamedMatrix),
}

impl Expression {
    /// The dense matrix, when it is in memory.
    pub fn in_memory(&self) -> Option<&[f32]> {
        match self {
            Self::InMemory(x) => Some(x),
            Self::Streamed(_) => None,
        }
    }

    /// Cells per block when streamed (the sampler draws a batch from one block).
    pub fn block_cells(&self) -> Option<usize> {
        match self {
            Self::InMemory(_) => None,
            Self::Streamed(s) => Some(s.layout.block_cells),
        }
    }
}

/// How the kept cells map to blocks and how a block's values are made.
#[derive(Debug)]
pub(crate) struct Layout {
    pub reader: RowReader,
    /// File row of each kept cell.
    pub rows: Vec<usize>,
    /// `normalize_total` factor of each kept cell (counts), or `None` (log1p data as stored).
    pub factors: Option<Vec<f64>>,
    /// For each file column, its position among the selected genes (`u32::MAX`: not selected).
    pub col_pos: Vec<u32>,
    pub width: usize,
    pub block_cells: usize,
    /// Kept cells of each condition, ascending.
    pub pools: Vec<Vec<usize>>,
    /// For each kept cell: its condition and its position in that condition's pool.
    pub place: Vec<(u32, u32)>,
    /// Moments of the selected genes over every kept cell (f32 values, natural log).
    pub moments: crate::hvg::GeneMoments,
}

type BlockKey = (u32, u32);

/// The decoded blocks in memory.
#[derive(Debug, Default)]
struct Cache {
    blocks: HashMap<BlockKey, (Arc<Vec<f32>>, u64)>,
    bytes: u64,
    clock: u64,
    loads: u64,
}

/// Cache activity, for the run log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub blocks: usize,
    pub bytes: u64,
    pub budget: u64,
    /// Blocks decoded from the file so far (a block evicted and needed again counts twice).
    pub loads: u64,
}

/// The prepared expression read from the file through a bounded cache of decoded blocks.
#[derive(Clone)]
pub struct StreamedMatrix {
    layout: Arc<Layout>,
    cache: Arc<Mutex<Cache>>,
    budget: u64,
}

impl fmt::Debug for StreamedMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamedMatrix")
            .field("cells", &self.layout.rows.len())
            .field("genes", &self.layout.width)
            .field("block_cells", &self.layout.block_cells)
            .field("budget", &self.budget)
            .finish()
    }
}

impl StreamedMatrix {
    pub(crate) fn new(layout: Layout, budget: u64) -> Self {
        Self {
            layout: Arc::new(layout),
            cache: Arc::new(Mutex::new(Cache::default())),
            budget,
        }
    }

    /// Per selected gene, the sums of `expm1(x)` and its square over every kept cell.
    pub fn moments(&self) -> &crate::hvg::GeneMoments {
        &self.layout.moments
    }

    pub fn stats(&self) -> CacheStats {
        let c = self.lock();
        CacheStats {
            blocks: c.blocks.len(),
            bytes: c.bytes,
            budget: self.budget,
            loads: c.loads,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding the lock leaves a consistent cache (entries are inserted whole).
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Row-major `(cells, genes)` values of the kept cells `cells` over the selected-gene
    /// columns `genes`. The cells are served block by block (each block fetched once per call
    /// and released before the next), so a call never holds more than one block beyond the
    /// cache.
    pub fn gather(&self, cells: &[usize], genes: &[usize]) -> Result<Vec<f32>, DataError> {
        let l = &self.layout;
        let width = genes.len();
        let key_of = |c: usize| {
            let (cond, pos) = l.place[c];
            (cond, (pos as usize / l.block_cells) as u32)
        };
        let mut order: Vec<usize> = (0..cells.len()).collect();
        order.sort_by_key(|&i| key_of(cells[i]));
        let mut out = vec![0f32; cells.len() * width];
        for group in order.chunk_by(|&a, &b| key_of(cells[a]) == key_of(cells[b])) {
            let block = self.block(key_of(cells[group[0]]))?;
            for &i in group {
                let at = l.place[cells[i]].1 as usize % l.block_cells;
                let row = &block[at * l.width..(at + 1) * l.width];
                let dst = &mut out[i * width..(i + 1) * width];
                for (d, &g) in dst.iter_mut().zip(genes) {
                    *d = row[g];
                }
            }
        }
        Ok(out)
    }

    /// The decoded block `key`, from the cache or the file.
    fn block(&self, key: BlockKey) -> Result<Arc<Vec<f32>>, DataError> {
        {
            let mut c = self.lock();
            c.clock += 1;
            let now = c.clock;
            if let Some((b, used)) = c.blocks.get_mut(&key) {
                *used = now;
                return Ok(b.clone());
            }
        }
        let block = Arc::new(self.decode(key)?);
        let size = (block.len() * 4) as u64;
        let mut c = self.lock();
        while c.bytes + size > self.budget && !c.blocks.is_empty() {
            let oldest = c
                .blocks
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
                .expect("not empty");
            if let Some((b, _)) = c.blocks.remove(&oldest) {
                c.bytes -= (b.len() * 4) as u64;
            }
        }
        c.clock += 1;
        let now = c.clock;
        c.bytes += size;
        c.loads += 1;
        // Another thread may have decoded the same block meanwhile: count it once.
        if let Some((old, _)) = c.blocks.insert(key, (block.clone(), now)) {
            c.bytes -= (old.len() * 4) as u64;
        }
        Ok(block)
    }

    /// Read block `(condition, k)` and make it dense over the selected genes, exactly as the
    /// in-memory path computes each value.
    fn decode(&self, (cond, k): BlockKey) -> Result<Vec<f32>, DataError> {
        let l = &self.layout;
        let pool = &l.pools[cond as usize];
        let lo = k as usize * l.block_cells;
        let cells = &pool[lo..(lo + l.block_cells).min(pool.len())];
        let rows: Vec<usize> = cells.iter().map(|&c| l.rows[c]).collect();
        let mut m = l.reader.read(&rows)?;
        let factors: Option<Vec<f64>> = l
            .factors
            .as_ref()
            .map(|f| cells.iter().map(|&c| f[c]).collect());
        crate::preprocess::to_log1p(&mut m, factors.as_deref());
        Ok(crate::dataset::densify(&m, &l.col_pos, l.width))
    }
}
