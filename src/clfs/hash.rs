//! The hashes that appear in blob names (spec §2.6).

/// FNV-1 with a zero starting value (CLFS's variant, not the standard basis).
pub fn fnv1(data: &[u8]) -> u32 {
    data.iter()
        .fold(0u32, |h, &b| h.wrapping_mul(0x0100_0193) ^ u32::from(b))
}

/// Seed of the MurmurHash2 used in names.
pub const MURMUR_SEED: u32 = 0x8C67_49AD;

/// MurmurHash2, 32-bit, Austin Appleby's original, with [`MURMUR_SEED`].
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5BD1_E995;
    // The length is mixed in modulo 2^32, as the reference does.
    let mut h = MURMUR_SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        if tail.len() >= 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// `(FNV1(id) << 32) | Murmur2(id)`: the 64-bit hash printed in version-2 names.
pub fn hash64(data: &[u8]) -> u64 {
    (u64::from(fnv1(data)) << 32) | u64::from(murmur2(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn spec_2_6_vectors() {
        let cases = [
            ("", 0x0000_0000, 0x69C2_EB67),
            ("61", 0x0000_0061, 0x45FC_3030),
            ("6162", 0x6100_98D1, 0x23E7_2FFB),
            ("616263", 0x84F0_9160, 0x95D8_AF47),
            ("61626364", 0xA6B4_DA44, 0x339E_626E),
            ("6162636465", 0xB2B3_9969, 0xC510_708F),
            ("000102030405060708090a0b0c0d0e0f", 0xD2EC_2140, 0xCEDF_F5F2),
        ];
        for (input, f, m) in cases {
            let b = unhex(input);
            assert_eq!(fnv1(&b), f, "fnv1({input})");
            assert_eq!(murmur2(&b), m, "murmur2({input})");
        }
    }

    #[test]
    fn spec_2_6_hash64_of_fixed_ids() {
        let cases = [
            ("00000000000000000000000000000062", "00000062BAE79F98"),
            ("00000000000000000000000000000063", "0000006310A0AE41"),
            ("00000000000000000000000000000064", "0000006457871C6B"),
            ("00000000000000000000000000000065", "000000659AF0AE7A"),
            ("00000000000000000000000000000066", "0000006663F1233C"),
            ("00000000000000000000000000000067", "000000671D210AB7"),
            (
                "000000000000000000000000000000000000000000000000",
                "0000000087020A51",
            ),
            (
                "11cf8a4600010100e903000000000000f6b165224a58b791",
                "51EAD3C2EB7A1130",
            ),
            ("0f1e2d3c4b5a49688776a5b4c3d2e1f0", "A9F1E7D00B790BA0"),
        ];
        for (id, h) in cases {
            assert_eq!(format!("{:016X}", hash64(&unhex(id))), h, "hash64({id})");
        }
    }
}
