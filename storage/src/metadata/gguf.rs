//! Reads a GGUF file's header (key/values and tensor table), never its tensor data.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::{ModelMetadata, WeightFormat};

const MAGIC: &[u8; 4] = b"GGUF";
/// Guards against allocating for garbage: no real file has more.
const MAX_ENTRIES: u64 = 1 << 20;
const MAX_STRING: u64 = 16 << 20;

pub fn read(path: &Path) -> Result<ModelMetadata, String> {
    read_part(path, true)
}

/// Reads a split GGUF (llama.cpp's `-0000K-of-0000N` parts, in order): the first part's
/// metadata, with the tensors of every part counted.
pub fn read_split(parts: &[&Path]) -> Result<ModelMetadata, String> {
    let (first, rest) = parts.split_first().ok_or("no GGUF parts")?;
    let mut meta = read_part(first, true)?;
    for part in rest {
        let more = read_part(part, false)?;
        meta.tensor_bytes = meta.tensor_bytes.saturating_add(more.tensor_bytes);
        meta.parameter_count = Some(
            meta.parameter_count
                .unwrap_or(0)
                .saturating_add(more.parameter_count.unwrap_or(0)),
        );
        for (ty, n) in more.parameters_by_type {
            *meta.parameters_by_type.entry(ty).or_default() += n;
        }
        meta.vocab_size = meta.vocab_size.or(more.vocab_size);
        if more.tied_embeddings == Some(false) {
            meta.tied_embeddings = Some(false);
        }
    }
    Ok(meta)
}

/// One file; a later part of a split file (`first` false) has no architecture of its own.
fn read_part(path: &Path, first: bool) -> Result<ModelMetadata, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut r = Reader(BufReader::with_capacity(1 << 20, file));
    parse(&mut r, first).map_err(|e| format!("{} is not a readable GGUF file: {e}", path.display()))
}

/// A scalar or string value; arrays are skipped (the vocabulary is not needed here).
enum Value {
    Int(u64),
    Str(String),
    Other,
}

fn parse(r: &mut Reader, first: bool) -> Result<ModelMetadata, String> {
    let mut magic = [0u8; 4];
    r.bytes(&mut magic)?;
    if &magic != MAGIC {
        return Err("bad magic".into());
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(format!("unsupported version {version}"));
    }
    let tensor_count = r.count()?;
    let kv_count = r.count()?;
    let mut kv = std::collections::HashMap::new();
    for _ in 0..kv_count {
        let key = r.string()?;
        let ty = r.u32()?;
        kv.insert(key, r.value(ty)?);
    }
    let mut meta = ModelMetadata::empty(WeightFormat::Gguf);
    let arch = match kv.get("general.architecture") {
        Some(Value::Str(a)) => a.clone(),
        _ if !first => String::new(),
        _ => return Err("general.architecture is missing".into()),
    };
    let int = |key: &str| match kv.get(&format!("{arch}.{key}")) {
        Some(Value::Int(v)) => Some(*v),
        _ => None,
    };
    meta.context_length = int("context_length");
    meta.layers = int("block_count");
    meta.embedding_length = int("embedding_length");
    meta.attention_heads = int("attention.head_count");
    meta.kv_heads = int("attention.head_count_kv").or(meta.attention_heads);
    meta.head_dim = int("attention.key_length")
        .or_else(|| Some(meta.embedding_length? / meta.attention_heads.filter(|h| *h > 0)?));
    meta.experts = int("expert_count").filter(|n| *n > 0);
    meta.experts_used = int("expert_used_count").filter(|n| *n > 0);
    let mut params = 0u64;
    let mut has_output = false;
    for _ in 0..tensor_count {
        let name = r.string()?;
        let dims = r.u32()?;
        if dims > 8 {
            return Err(format!("a tensor with {dims} dimensions"));
        }
        let mut n = 1u64;
        for d in 0..dims {
            let size = r.u64()?;
            // token_embd is [hidden, vocab] in ggml's order.
            if name == "token_embd.weight" && d == 1 {
                meta.vocab_size = Some(size);
            }
            n = n.saturating_mul(size);
        }
        has_output |= name == "output.weight";
        let ty = r.u32()?;
        let _offset = r.u64()?;
        let (name, block, block_bytes) = tensor_type(ty);
        *meta.parameters_by_type.entry(name.to_string()).or_default() += n;
        meta.tensor_bytes = meta
            .tensor_bytes
            .saturating_add(n.div_ceil(block) * block_bytes);
        params = params.saturating_add(n);
    }
    meta.parameter_count = Some(params);
    meta.tied_embeddings = Some(!has_output);
    meta.architecture = Some(arch).filter(|a| !a.is_empty());
    meta.chat_template = match kv.get("tokenizer.chat_template") {
        Some(Value::Str(t)) => Some(t.clone()),
        _ => None,
    };
    meta.quantization = match kv.get("general.file_type") {
        Some(Value::Int(t)) => file_type(*t).map(str::to_string),
        _ => None,
    }
    .or_else(|| {
        meta.parameters_by_type
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(t, _)| t.to_uppercase())
    });
    Ok(meta)
}

/// ggml tensor types: name, elements per block, bytes per block.
fn tensor_type(ty: u32) -> (&'static str, u64, u64) {
    match ty {
        0 => ("f32", 1, 4),
        1 => ("f16", 1, 2),
        2 => ("q4_0", 32, 18),
        3 => ("q4_1", 32, 20),
        6 => ("q5_0", 32, 22),
        7 => ("q5_1", 32, 24),
        8 => ("q8_0", 32, 34),
        9 => ("q8_1", 32, 36),
        10 => ("q2_K", 256, 84),
        11 => ("q3_K", 256, 110),
        12 => ("q4_K", 256, 144),
        13 => ("q5_K", 256, 176),
        14 => ("q6_K", 256, 210),
        15 => ("q8_K", 256, 292),
        16 => ("iq2_xxs", 256, 66),
        17 => ("iq2_xs", 256, 74),
        18 => ("iq3_xxs", 256, 98),
        19 => ("iq1_s", 256, 50),
        20 => ("iq4_nl", 32, 18),
        21 => ("iq3_s", 256, 110),
        22 => ("iq2_s", 256, 82),
        23 => ("iq4_xs", 256, 136),
        24 => ("i8", 1, 1),
        25 => ("i16", 1, 2),
        26 => ("i32", 1, 4),
        27 => ("i64", 1, 8),
        28 => ("f64", 1, 8),
        29 => ("iq1_m", 256, 56),
        30 => ("bf16", 1, 2),
        34 => ("tq1_0", 256, 54),
        35 => ("tq2_0", 256, 66),
        // Unknown types are counted at 4 bytes per element, which errs high.
        _ => ("unknown", 1, 4),
    }
}

/// llama.cpp's `general.file_type` names.
fn file_type(t: u64) -> Option<&'static str> {
    Some(match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        _ => return None,
    })
}

struct Reader(BufReader<File>);

impl Reader {
    fn bytes(&mut self, buf: &mut [u8]) -> Result<(), String> {
        self.0.read_exact(buf).map_err(|e| e.to_string())
    }
    fn u32(&mut self) -> Result<u32, String> {
        let mut b = [0u8; 4];
        self.bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let mut b = [0u8; 8];
        self.bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn count(&mut self) -> Result<u64, String> {
        let n = self.u64()?;
        if n > MAX_ENTRIES {
            return Err(format!("implausible count {n}"));
        }
        Ok(n)
    }
    fn skip(&mut self, n: u64) -> Result<(), String> {
        let copied = std::io::copy(&mut (&mut self.0).take(n), &mut std::io::sink())
            .map_err(|e| e.to_string())?;
        if copied != n {
            return Err("unexpected end of file".into());
        }
        Ok(())
    }
    fn string(&mut self) -> Result<String, String> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(format!("implausible string length {len}"));
        }
        let mut buf = vec![0u8; len as usize];
        self.bytes(&mut buf)?;
        String::from_utf8(buf).map_err(|_| "a string is not UTF-8".to_string())
    }
    fn value(&mut self, ty: u32) -> Result<Value, String> {
        let int = |v: u64| Ok(Value::Int(v));
        match ty {
            0 | 1 | 7 => {
                let mut b = [0u8; 1];
                self.bytes(&mut b)?;
                if ty == 1 {
                    int((b[0] as i8).max(0) as u64)
                } else {
                    int(b[0] as u64)
                }
            }
            2 | 3 => {
                let mut b = [0u8; 2];
                self.bytes(&mut b)?;
                int(u16::from_le_bytes(b) as u64)
            }
            4 => int(self.u32()? as u64),
            5 => int((self.u32()? as i32).max(0) as u64),
            6 => self.u32().map(|_| Value::Other),
            8 => self.string().map(Value::Str),
            9 => {
                let item = self.u32()?;
                let len = self.u64()?;
                match element_size(item) {
                    Some(size) => self.skip(len.saturating_mul(size))?,
                    None if item == 8 => {
                        for _ in 0..len {
                            let n = self.u64()?;
                            self.skip(n)?;
                        }
                    }
                    None => return Err(format!("unsupported array element type {item}")),
                }
                Ok(Value::Other)
            }
            10 => int(self.u64()?),
            11 => int((self.u64()? as i64).max(0) as u64),
            12 => self.u64().map(|_| Value::Other),
            _ => Err(format!("unknown value type {ty}")),
        }
    }
}

fn element_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}
