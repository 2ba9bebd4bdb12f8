//! Random numbers of the Monte Carlo (SPEC §4.9, Appendix A.7).
//!
//! * [`SeedSequence`] and [`Pcg64`] reproduce NumPy's `default_rng(seed)` bit generator
//!   exactly: SeedSequence entropy mixing (pool of four 32-bit words) and PCG64
//!   (XSL-RR 128/64, seeded through `generate_state(4, uint64)`), so
//!   [`per_object_seeds`] equals `default_rng(seed).integers(2**32, size=n)` (each seed one
//!   raw 32-bit output; 32-bit outputs split a 64-bit draw low half first).
//! * DEVIATION (documented): normal deviates use the Marsaglia polar method on
//!   [`Pcg64::next_f64`] uniforms, not NumPy's 256-layer ziggurat, so Monte Carlo
//!   realisations agree with FastSpecFit only statistically. They are deterministic given
//!   the per-object seed, hence independent of thread count.

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
            for dst in 0..POOL_SIZE {
                let h = hashmix(w, &mut hc);
                pool[dst] = mix(pool[dst], h);
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

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    /// Next raw 64-bit output (XSL-RR).
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

    /// Standard normal deviate (Marsaglia polar method; see the module DEVIATION).
    pub fn standard_normal(&mut self, spare: &mut Option<f64>) -> f64 {
        if let Some(s) = spare.take() {
            return s;
        }
        loop {
            let u = 2.0 * self.next_f64() - 1.0;
            let v = 2.0 * self.next_f64() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * s.ln() / s).sqrt();
                *spare = Some(v * f);
                return u * f;
            }
        }
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
    fn normal_moments() {
        let mut g = Pcg64::from_seed(7);
        let mut sp = None;
        let x: Vec<f64> = (0..20000).map(|_| g.standard_normal(&mut sp)).collect();
        let m = x.iter().sum::<f64>() / x.len() as f64;
        let v = x.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / x.len() as f64;
        assert!(m.abs() < 0.03 && (v - 1.0).abs() < 0.05, "{m} {v}");
    }
}
