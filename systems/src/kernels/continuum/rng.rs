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
                    let xx = -ZIG_INV_R * (-self.next_f64()).ln_1p();
                    let yy = -(-self.next_f64()).ln_1p();
                    if yy + yy > xx * xx {
                        return if (rabs >> 8) & 1 == 1 {
                            -(ZIG_R + xx)
                        } else {
                            ZIG_R + xx
                        };
                    }
                }
            } else if (zig.fi[idx - 1] - zig.fi[idx]) * self.next_f64() + zig.fi[idx]
                < (-0.5 * x * x).exp()
            {
                return x;
            }
            r = self.next_u64();
        }
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
}
