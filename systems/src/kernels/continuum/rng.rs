//! Random numbers of the Monte Carlo (SPEC §4.9, Appendix A.7).
//!
//! * [`SeedSequence`] and [`Pcg64`] reproduce NumPy's `default_rng(seed)` bit generator
//!   exactly: SeedSequence entropy mixing (pool of four 32-bit words) and PCG64
//!   (XSL-RR 128/64, seeded through `generate_state(4, uint64)`), so
//!   [`per_object_seeds`] equals `default_rng(seed).integers(2**32, size=n)` (each seed one
//!   raw 32-bit output; 32-bit outputs split a 64-bit draw low half first).
//! * [`Pcg64::standard_normal`] is NumPy's ziggurat sampler (`Generator.normal` draws
//!   loc + scale·N(0,1) in C order), so Monte Carlo realisations reproduce FastSpecFit's to ~1e-12 relative
//!   (tables: see [`Ziggurat`]). They depend only on the per-object seed, hence not on the
//!   thread count.

const MASK32: u64 = 0xFFFF_FFFF;
const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const POOL_SIZE: usize = 4;

/// NumPy's `SeedSequence` for a non-negative integer entropy (no spawn key).
#[derive(Debug, Clone)]
pub struct SeedSequence {
    pool: [u32; POOL_SIZE],
}

fn hashmix(value: u32, hash_const: &mut u32) -> u32 {
    let mut v = value ^ *hash_const;
    *hash_const = hash_const.wrapping_mul(MULT_A);
    v = v.wrapping_mul(*hash_const);
    v ^ (v >> 16)
}

fn mix(x: u32, y: u32) -> u32 {
    let r = MIX_MULT_L
        .wrapping_mul(x)
        .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    r ^ (r >> 16)
}

impl SeedSequence {
    /// Seed from a non-negative integer (its little-endian 32-bit words are the entropy).
    pub fn new(entropy: u64) -> Self {
        let mut words = vec![(entropy & MASK32) as u32];
        if entropy >> 32 != 0 {
            words.push((entropy >> 32) as u32);
        }
        let mut pool = [0u32; POOL_SIZE];
        let mut hc = INIT_A;
        for (i, p) in pool.iter_mut().enumerate() {
            *p = hashmix(words.get(i).copied().unwrap_or(0), &mut hc);
        }
        for src in 0..POOL_SIZE {
            for dst in 0..POOL_SIZE {
                if src != dst {
                    let h = hashmix(pool[src], &mut hc);
                    pool[dst] = mix(pool[dst], h);
                }
            }
        }
        for &w in words.iter().skip(POOL_SIZE) {
            for p in pool.iter_mut() {
                let h = hashmix(w, &mut hc);
                *p = mix(*p, h);
            }
        }
        SeedSequence { pool }
    }

    /// `generate_state(n, uint32)`.
    pub fn generate_state_u32(&self, n: usize) -> Vec<u32> {
        let mut hc = INIT_B;
        (0..n)
            .map(|i| {
                let mut v = self.pool[i % POOL_SIZE] ^ hc;
                hc = hc.wrapping_mul(MULT_B);
                v = v.wrapping_mul(hc);
                v ^ (v >> 16)
            })
            .collect()
    }
}

const PCG_MULT: u128 = (2_549_297_995_355_413_924u128 << 64) | 4_865_540_595_714_422_341u128;

/// NumPy's PCG64 bit generator (with its 32-bit output buffering).
#[derive(Debug, Clone)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
    buffered: Option<u32>,
}

impl Pcg64 {
    /// `PCG64(SeedSequence(seed))`, i.e. the generator of `numpy.random.default_rng(seed)`.
    pub fn from_seed(seed: u64) -> Self {
        let w = SeedSequence::new(seed).generate_state_u32(8);
        let u = |k: usize| (w[2 * k] as u64) | ((w[2 * k + 1] as u64) << 32);
        let initstate = ((u(0) as u128) << 64) | u(1) as u128;
        let initseq = ((u(2) as u128) << 64) | u(3) as u128;
        let mut g = Pcg64 {
            state: 0,
            inc: (initseq << 1) | 1,
            buffered: None,
        };
        g.step();
        g.state = g.state.wrapping_add(initstate);
        g.step();
        g
    }

    #[inline]
    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    /// Next raw 64-bit output (XSL-RR).
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let rot = (self.state >> 122) as u32;
        (((self.state >> 64) as u64) ^ (self.state as u64)).rotate_right(rot)
    }

    /// Next 32-bit output: low half of a 64-bit draw, then its high half.
    pub fn next_u32(&mut self) -> u32 {
        if let Some(v) = self.buffered.take() {
            return v;
        }
        let v = self.next_u64();
        self.buffered = Some((v >> 32) as u32);
        (v & MASK32) as u32
    }

    /// Uniform double in [0, 1) (NumPy's `next_double`: 53 high bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Standard normal deviate: NumPy's `random_standard_normal` (256-layer ziggurat on
    /// 64-bit draws: 8 bits layer, 1 bit sign, 52 bits magnitude; tail and wedge fallbacks).
    #[inline]
    pub fn standard_normal(&mut self, zig: &Ziggurat) -> f64 {
        // the first draw is accepted ~99% of the time: keep that path small and inlined
        let r = self.next_u64();
        let idx = (r & 0xff) as usize;
        let rabs = (r >> 9) & 0x000f_ffff_ffff_ffff;
        if rabs < zig.ki[idx] {
            let x = rabs as f64 * zig.wi[idx];
            return if (r >> 8) & 1 == 1 { -x } else { x };
        }
        self.standard_normal_slow(zig, r)
    }

    /// The rest of [`Self::standard_normal`] after a first draw `r` outside its layer's
    /// rectangle.
    #[cold]
    #[inline(never)]
    fn standard_normal_slow(&mut self, zig: &Ziggurat, first: u64) -> f64 {
        normal_slow(self, zig, first)
    }

    /// `out[i] = loc[i] + scale[i]·N(0,1)` for i in order: the same values, and the same
    /// generator state afterwards, as `loc[i] + scale[i] * self.standard_normal(zig)` in a
    /// loop (NumPy's `Generator.normal(loc, scale)` of a C-ordered array).
    ///
    /// The raw 64-bit outputs are made a block at a time by [`Pcg64::fill_u64`] (interleaved
    /// LCG lanes instead of one serial 128-bit multiply chain) and consumed in order by the
    /// same ziggurat: about twice as fast as the one-by-one loop.
    ///
    /// # Panics
    /// If `loc` or `scale` is shorter than `out`.
    pub fn fill_normal(&mut self, zig: &Ziggurat, loc: &[f64], scale: &[f64], out: &mut [f64]) {
        let n = out.len();
        let mut it = out.iter_mut();
        self.normals_with(zig, &loc[..n], &scale[..n], |v| {
            if let Some(o) = it.next() {
                *o = v;
            }
        });
    }

    /// [`Pcg64::fill_normal`] appending `loc.len()` values to `out`.
    ///
    /// # Panics
    /// If `scale` is shorter than `loc`.
    pub fn extend_normal(
        &mut self,
        zig: &Ziggurat,
        loc: &[f64],
        scale: &[f64],
        out: &mut Vec<f64>,
    ) {
        out.reserve(loc.len());
        self.normals_with(zig, loc, &scale[..loc.len()], |v| out.push(v));
    }

    /// `emit(loc[i] + scale[i]·N(0,1))` for every i in order (`scale` as long as `loc`).
    #[inline(always)]
    fn normals_with(
        &mut self,
        zig: &Ziggurat,
        loc: &[f64],
        scale: &[f64],
        mut emit: impl FnMut(f64),
    ) {
        let mut raw = RawBlocks::new(self);
        for (&l, &s) in loc.iter().zip(scale) {
            let r = raw.next_raw();
            let idx = (r & 0xff) as usize;
            let rabs = (r >> 9) & 0x000f_ffff_ffff_ffff;
            let n = if rabs < zig.ki[idx] {
                // rabs < 2⁵²: the signed conversion is exact; −x is x with its sign bit set
                let x = (rabs as i64 as f64) * zig.wi[idx];
                f64::from_bits(x.to_bits() ^ (((r >> 8) & 1) << 63))
            } else {
                raw.slow(zig, r)
            };
            emit(l + s * n);
        }
        raw.finish();
    }

    /// The next `out.len()` raw outputs of [`Pcg64::next_u64`] (same values, same final
    /// state), computed on [`LANES`] interleaved lanes: lane j holds the state of draw
    /// `LANES·k + j` and steps by the `LANES`-step map s ↦ aᴸs + c(aᴸ⁻¹ + … + a + 1).
    pub fn fill_u64(&mut self, out: &mut [u64]) {
        let nl = out.len() / LANES * LANES;
        if nl > 0 {
            let (al, cl) = self.jump(LANES);
            let mut s = [0u128; LANES];
            let mut x = self.state;
            for sj in s.iter_mut() {
                x = x.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
                *sj = x;
            }
            let mut blocks = out[..nl].chunks_exact_mut(LANES);
            let last = blocks.len() - 1;
            for (k, b) in blocks.by_ref().enumerate() {
                for (o, &sj) in b.iter_mut().zip(&s) {
                    *o = xsl_rr(sj);
                }
                if k < last {
                    for sj in s.iter_mut() {
                        *sj = sj.wrapping_mul(al).wrapping_add(cl);
                    }
                }
            }
            self.state = s[LANES - 1];
        }
        for o in &mut out[nl..] {
            *o = self.next_u64();
        }
    }

    /// Multiplier and increment of `n` steps: s ↦ aⁿs + c(aⁿ⁻¹ + … + 1).
    fn jump(&self, n: usize) -> (u128, u128) {
        let (mut an, mut cn) = (1u128, 0u128);
        for _ in 0..n {
            an = an.wrapping_mul(PCG_MULT);
            cn = cn.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
        }
        (an, cn)
    }
}

/// Interleaved LCG lanes of [`Pcg64::fill_u64`].
const LANES: usize = 4;

/// XSL-RR output of a PCG64 state.
#[inline(always)]
fn xsl_rr(state: u128) -> u64 {
    let rot = (state >> 122) as u32;
    (((state >> 64) as u64) ^ (state as u64)).rotate_right(rot)
}

/// A source of the raw 64-bit outputs of one PCG64 stream.
trait RawSource {
    fn next_raw(&mut self) -> u64;

    /// Uniform double in [0, 1) (NumPy's `next_double`).
    #[inline]
    fn next_double(&mut self) -> f64 {
        (self.next_raw() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
}

impl RawSource for Pcg64 {
    #[inline]
    fn next_raw(&mut self) -> u64 {
        self.next_u64()
    }
}

/// Raw outputs of a [`Pcg64`] made [`RAW_BLOCK`] at a time by [`Pcg64::fill_u64`];
/// [`RawBlocks::finish`] leaves the generator as if exactly the consumed outputs had been
/// drawn one by one.
struct RawBlocks<'a> {
    g: &'a mut Pcg64,
    buf: [u64; RAW_BLOCK],
    pos: usize,
    /// Generator state before the buffered block.
    start: u128,
}

/// Raw outputs per block of [`RawBlocks`].
const RAW_BLOCK: usize = 256;

impl<'a> RawBlocks<'a> {
    fn new(g: &'a mut Pcg64) -> Self {
        let start = g.state;
        RawBlocks {
            g,
            buf: [0; RAW_BLOCK],
            pos: RAW_BLOCK,
            start,
        }
    }

    #[cold]
    #[inline(never)]
    fn refill(&mut self) {
        self.start = self.g.state;
        self.g.fill_u64(&mut self.buf);
        self.pos = 0;
    }

    #[cold]
    #[inline(never)]
    fn slow(&mut self, zig: &Ziggurat, first: u64) -> f64 {
        normal_slow(self, zig, first)
    }

    /// Rewind the generator to just after the last consumed output.
    fn finish(self) {
        if self.pos < RAW_BLOCK {
            self.g.state = self.start;
            for _ in 0..self.pos {
                self.g.step();
            }
        }
    }
}

impl RawSource for RawBlocks<'_> {
    #[inline(always)]
    fn next_raw(&mut self) -> u64 {
        if self.pos == RAW_BLOCK {
            self.refill();
        }
        let r = self.buf[self.pos];
        self.pos += 1;
        r
    }
}

/// The ziggurat after a first draw `first` outside its layer's rectangle (NumPy's
/// `random_standard_normal` from there on), drawing further outputs from `g`.
#[inline(always)]
fn normal_slow(g: &mut impl RawSource, zig: &Ziggurat, first: u64) -> f64 {
    let mut r = first;
    loop {
        let idx = (r & 0xff) as usize;
        let sign = (r >> 8) & 1;
        let rabs = (r >> 9) & 0x000f_ffff_ffff_ffff;
        let mut x = rabs as f64 * zig.wi[idx];
        if sign == 1 {
            x = -x;
        }
        if rabs < zig.ki[idx] {
            return x;
        }
        if idx == 0 {
            loop {
                let xx = -ZIG_INV_R * (-g.next_double()).ln_1p();
                let yy = -(-g.next_double()).ln_1p();
                if yy + yy > xx * xx {
                    return if (rabs >> 8) & 1 == 1 {
                        -(ZIG_R + xx)
                    } else {
                        ZIG_R + xx
                    };
                }
            }
        } else if (zig.fi[idx - 1] - zig.fi[idx]) * g.next_double() + zig.fi[idx]
            < (-0.5 * x * x).exp()
        {
            return x;
        }
        r = g.next_raw();
    }
}

/// Start of the ziggurat's tail, r.
#[allow(clippy::excessive_precision)]
const ZIG_R: f64 = 3.654_152_885_361_008_8;
/// 1/r.
#[allow(clippy::excessive_precision)]
const ZIG_INV_R: f64 = 0.273_661_237_329_758_27;
/// Area of each ziggurat layer.
const ZIG_V: f64 = 0.004_928_673_233_99;

/// The 256-layer ziggurat tables of the normal sampler, built with the Marsaglia–Tsang
/// construction (r, v as NumPy). They differ from NumPy's stored constants by ~1e-12
/// relative, so each deviate equals NumPy's to ~1e-12 relative (a layer-acceptance test
/// flips only with probability ~1e-12 per draw).
#[derive(Debug, Clone)]
pub struct Ziggurat {
    ki: [u64; 256],
    wi: [f64; 256],
    fi: [f64; 256],
}

impl Default for Ziggurat {
    fn default() -> Self {
        Self::new()
    }
}

impl Ziggurat {
    /// Build the tables.
    pub fn new() -> Self {
        let m = 4_503_599_627_370_496.0; // 2^52
        let f = |x: f64| (-0.5 * x * x).exp();
        let (mut ki, mut wi, mut fi) = ([0u64; 256], [0f64; 256], [0f64; 256]);
        let mut dn = ZIG_R;
        let mut tn = dn;
        let q = ZIG_V / f(dn);
        ki[0] = ((dn / q) * m) as u64;
        ki[1] = 0;
        wi[0] = q / m;
        wi[255] = dn / m;
        fi[0] = 1.0;
        fi[255] = f(dn);
        for i in (1..255).rev() {
            dn = (-2.0 * (ZIG_V / dn + f(dn)).ln()).sqrt();
            ki[i + 1] = ((dn / tn) * m) as u64;
            tn = dn;
            fi[i] = f(dn);
            wi[i] = dn / m;
        }
        Ziggurat { ki, wi, fi }
    }
}

/// Per-object Monte Carlo seeds, `default_rng(seed).integers(2**32, size=n, dtype=int64)`.
pub fn per_object_seeds(seed: u64, n: usize) -> Vec<i64> {
    let mut g = Pcg64::from_seed(seed);
    (0..n).map(|_| g.next_u32() as i64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_seed_sequence_and_pcg64() {
        // numpy: SeedSequence(1).generate_state(4) and default_rng(1).integers(2**32, size=4)
        let f: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/continuum/rng.json"
            ))
            .expect("fixture continuum/rng.json"),
        )
        .expect("json");
        for case in f["cases"].as_array().expect("cases") {
            let seed = case["seed"].as_u64().expect("seed");
            let st: Vec<u32> = case["state"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(
                SeedSequence::new(seed).generate_state_u32(st.len()),
                st,
                "seed {seed}"
            );
            let ints: Vec<i64> = case["integers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            assert_eq!(per_object_seeds(seed, ints.len()), ints, "seed {seed}");
            let u64s: Vec<u64> = case["raw64"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            let mut g = Pcg64::from_seed(seed);
            assert_eq!(
                (0..u64s.len()).map(|_| g.next_u64()).collect::<Vec<_>>(),
                u64s
            );
        }
    }

    #[test]
    fn numpy_normal_draws() {
        // numpy: default_rng(seed).normal(size=2000), default_rng(7).normal(loc, scale, (4, 3))
        let f: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/continuum/normal.json"
            ))
            .expect("fixture continuum/normal.json"),
        )
        .expect("json");
        let zig = Ziggurat::new();
        let mut g = Pcg64::from_seed(f["seed"].as_u64().unwrap());
        for (i, e) in f["normals"].as_array().unwrap().iter().enumerate() {
            let (x, e) = (g.standard_normal(&zig), e.as_f64().unwrap());
            assert!(
                (x - e).abs() <= 1e-10 * e.abs().max(1.0),
                "draw {i}: {x} vs {e}"
            );
        }
        let mut g = Pcg64::from_seed(7);
        let (loc, scale) = ([1.0, 2.0, 3.0], [0.5, 0.0, 2.0]);
        for (i, e) in f["loc_scale"].as_array().unwrap().iter().enumerate() {
            let x = loc[i % 3] + scale[i % 3] * g.standard_normal(&zig);
            assert!((x - e.as_f64().unwrap()).abs() <= 1e-10, "{i}");
        }
    }

    #[test]
    fn bulk_draws_equal_one_by_one() {
        let zig = Ziggurat::new();
        for seed in [0u64, 1, 7, 123_456_789, 4_294_967_295] {
            // raw outputs, with lengths around the lane and block sizes, then the state
            for n in [0usize, 1, 3, 4, 5, 255, 256, 257, 1000] {
                let (mut a, mut b) = (Pcg64::from_seed(seed), Pcg64::from_seed(seed));
                let _ = a.next_u32(); // a buffered half must survive
                let _ = b.next_u32();
                let want: Vec<u64> = (0..n).map(|_| a.next_u64()).collect();
                let mut got = vec![0; n];
                b.fill_u64(&mut got);
                assert_eq!(got, want, "seed {seed} n {n}");
                assert_eq!((a.next_u32(), a.next_u64()), (b.next_u32(), b.next_u64()));
            }
            // normals: many draws (tail and wedge paths included), several calls in a row
            let (mut a, mut b) = (Pcg64::from_seed(seed), Pcg64::from_seed(seed));
            for n in [7usize, 256, 1, 0, 5000, 300] {
                let loc: Vec<f64> = (0..n).map(|i| i as f64 * 0.25 - 3.0).collect();
                let scale: Vec<f64> = (0..n).map(|i| (i % 5) as f64 * 0.5).collect();
                let want: Vec<f64> = (0..n)
                    .map(|i| loc[i] + scale[i] * a.standard_normal(&zig))
                    .collect();
                let mut got = vec![0.0; n];
                if n % 2 == 0 {
                    b.fill_normal(&zig, &loc, &scale, &mut got);
                } else {
                    got.clear();
                    b.extend_normal(&zig, &loc, &scale, &mut got);
                }
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(g, w)| g.to_bits() == w.to_bits());
                assert!(same, "seed {seed} n {n}");
            }
            assert_eq!(a.next_u64(), b.next_u64(), "state after the normals");
        }
        // the slow paths were exercised: some standard normals beyond the tail start r
        let mut g = Pcg64::from_seed(3);
        let mut v = vec![0.0; 200_000];
        g.fill_normal(&zig, &vec![0.0; v.len()], &vec![1.0; v.len()], &mut v);
        assert!(v.iter().any(|x| x.abs() > ZIG_R));
    }

    /// Timing of the bulk sampler against the one-by-one loop (run with `--ignored
    /// --nocapture` in release).
    #[test]
    #[ignore]
    fn bench_fill_normal() {
        let zig = Ziggurat::new();
        let n = 7781 * 50;
        let (loc, scale) = (vec![1.0; n], vec![0.5; n]);
        let mut out = vec![0.0; n];
        for _ in 0..5 {
            let mut g = Pcg64::from_seed(11);
            let t = std::time::Instant::now();
            for (i, o) in out.iter_mut().enumerate() {
                *o = loc[i] + scale[i] * g.standard_normal(&zig);
            }
            let t1 = t.elapsed();
            let s1: f64 = out.iter().sum();
            let mut g = Pcg64::from_seed(11);
            let t = std::time::Instant::now();
            g.fill_normal(&zig, &loc, &scale, &mut out);
            let t2 = t.elapsed();
            let s2: f64 = out.iter().sum();
            let mut g = Pcg64::from_seed(11);
            let mut ext = Vec::new();
            let t = std::time::Instant::now();
            g.extend_normal(&zig, &loc, &scale, &mut ext);
            println!(
                "extend {:.2} ns/draw",
                t.elapsed().as_nanos() as f64 / n as f64
            );
            assert_eq!(ext, out);
            let mut raw = vec![0u64; n];
            let t = std::time::Instant::now();
            g.fill_u64(&mut raw);
            let t3 = t.elapsed();
            println!(
                "raw {:.2} ns/draw {}",
                t3.as_nanos() as f64 / n as f64,
                raw[n - 1]
            );
            println!(
                "one by one {:.2} ns/draw, bulk {:.2} ns/draw ({s1} {s2})",
                t1.as_nanos() as f64 / n as f64,
                t2.as_nanos() as f64 / n as f64
            );
        }
    }
}
