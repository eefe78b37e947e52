//! A small reader for kernel BTF (`/sys/kernel/btf/vmlinux`): enough to find structure member
//! offsets (through anonymous structs and unions) and function signatures. The eBPF programs are
//! written in Rust without CO-RE relocations, so the tool resolves the offsets they need here
//! and hands them over as load-time constants.

use thiserror::Error;

const BTF_MAGIC: u16 = 0xeb9f;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("not BTF (bad magic {0:#06x})")]
    BadMagic(u16),
    #[error("truncated BTF: {0}")]
    Truncated(&'static str),
    #[error("unknown BTF kind {kind} at type id {id}")]
    UnknownKind { kind: u32, id: u32 },
    #[error("struct {0} not found in BTF")]
    NoStruct(String),
    #[error("member {member} not found in struct {strukt}")]
    NoMember { strukt: String, member: String },
    #[error("member {member} of struct {strukt} is a bit field")]
    BitField { strukt: String, member: String },
}

pub mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

/// A struct/union member, enumerator or function parameter. Names stay in the string
/// section (`name_off`): the vmlinux BTF has hundreds of thousands of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub name_off: u32,
    pub type_id: u32,
    /// Offset in bits from the start of the containing type; an enumerator's value.
    pub bit_offset: u32,
    /// Bit-field size, 0 for an ordinary member.
    pub bitfield_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Type {
    pub kind: u32,
    pub name_off: u32,
    /// `size` for INT/STRUCT/UNION/ENUM/FLOAT, the referenced type id for the others.
    pub size_or_type: u32,
    /// Struct/union members, enumerators or function prototype parameters, as a range of
    /// [`Btf`]'s member table.
    members: (u32, u32),
}

/// Parsed BTF: types by id (id 0 is `void`), their members, and the string section, kept
/// compact (about 12 MB for a distribution kernel's vmlinux instead of 40 MB with owned
/// strings): huge-fault's peak memory is its start-up.
#[derive(Debug)]
pub struct Btf {
    types: Vec<Type>,
    members: Vec<Member>,
    strings: Vec<u8>,
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, BtfError> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(BtfError::Truncated("header"))
}

fn u32_at(b: &[u8], off: usize, what: &'static str) -> Result<u32, BtfError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(BtfError::Truncated(what))
}

impl Btf {
    pub fn from_sys_fs() -> std::io::Result<Vec<u8>> {
        std::fs::read("/sys/kernel/btf/vmlinux")
    }

    pub fn parse(b: &[u8]) -> Result<Self, BtfError> {
        let magic = u16_at(b, 0)?;
        if magic != BTF_MAGIC {
            return Err(BtfError::BadMagic(magic));
        }
        let hdr_len = u32_at(b, 4, "header")? as usize;
        let type_off = u32_at(b, 8, "header")? as usize;
        let type_len = u32_at(b, 12, "header")? as usize;
        let str_off = u32_at(b, 16, "header")? as usize;
        let str_len = u32_at(b, 20, "header")? as usize;
        let types_bytes = b
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or(BtfError::Truncated("type section"))?;
        let strings = b
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Truncated("string section"))?
            .to_vec();

        let mut types = vec![Type {
            kind: 0,
            name_off: 0,
            size_or_type: 0,
            members: (0, 0),
        }];
        let mut members = Vec::new();
        let mut p = 0usize;
        while p < types_bytes.len() {
            let id = types.len() as u32;
            let name_off = u32_at(types_bytes, p, "type")?;
            let info = u32_at(types_bytes, p + 4, "type")?;
            let size_or_type = u32_at(types_bytes, p + 8, "type")?;
            p += 12;
            let vlen = (info & 0xffff) as usize;
            let k = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let first = members.len() as u32;
            match k {
                kind::INT => p += 4,
                kind::PTR
                | kind::FWD
                | kind::TYPEDEF
                | kind::VOLATILE
                | kind::CONST
                | kind::RESTRICT
                | kind::FUNC
                | kind::FLOAT
                | kind::TYPE_TAG => {}
                kind::ARRAY => p += 12,
                kind::STRUCT | kind::UNION => {
                    for _ in 0..vlen {
                        let m_off = u32_at(types_bytes, p + 8, "member")?;
                        let (bit_offset, bitfield_size) = if kind_flag {
                            (m_off & 0x00ff_ffff, m_off >> 24)
                        } else {
                            (m_off, 0)
                        };
                        members.push(Member {
                            name_off: u32_at(types_bytes, p, "member")?,
                            type_id: u32_at(types_bytes, p + 4, "member")?,
                            bit_offset,
                            bitfield_size,
                        });
                        p += 12;
                    }
                }
                kind::ENUM | kind::ENUM64 => {
                    // Enumerators keep their value (the low 32 bits) in `bit_offset`.
                    let step = if k == kind::ENUM { 8 } else { 12 };
                    for _ in 0..vlen {
                        members.push(Member {
                            name_off: u32_at(types_bytes, p, "enumerator")?,
                            type_id: 0,
                            bit_offset: u32_at(types_bytes, p + 4, "enumerator")?,
                            bitfield_size: 0,
                        });
                        p += step;
                    }
                }
                kind::FUNC_PROTO => {
                    for _ in 0..vlen {
                        members.push(Member {
                            name_off: u32_at(types_bytes, p, "param")?,
                            type_id: u32_at(types_bytes, p + 4, "param")?,
                            bit_offset: 0,
                            bitfield_size: 0,
                        });
                        p += 8;
                    }
                }
                kind::VAR => p += 4,
                kind::DATASEC => p += 12 * vlen,
                kind::DECL_TAG => p += 4,
                other => return Err(BtfError::UnknownKind { kind: other, id }),
            }
            if p > types_bytes.len() {
                return Err(BtfError::Truncated("type data"));
            }
            types.push(Type {
                kind: k,
                name_off,
                size_or_type,
                members: (first, members.len() as u32 - first),
            });
        }
        types.shrink_to_fit();
        members.shrink_to_fit();
        Ok(Self {
            types,
            members,
            strings,
        })
    }

    /// The string at `off` of the string section ("" when out of range).
    pub fn name(&self, off: u32) -> &str {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    pub fn type_by_id(&self, id: u32) -> Option<&Type> {
        self.types.get(id as usize)
    }

    /// The members (or enumerators, or parameters) of a type.
    pub fn members(&self, t: &Type) -> &[Member] {
        let (first, n) = t.members;
        &self.members[first as usize..(first + n) as usize]
    }

    /// The first type of `kind` named `name` (a scan: called a few times per start).
    pub fn find(&self, kind: u32, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|t| t.kind == kind && t.name_off != 0 && self.name(t.name_off) == name)
            .map(|i| i as u32)
    }

    /// Byte offset of `member` in `struct strukt`, looking through anonymous structs and
    /// unions the way C does.
    pub fn member_offset(&self, strukt: &str, member: &str) -> Result<u32, BtfError> {
        let id = self
            .find(kind::STRUCT, strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.into()))?;
        match self.find_member_bits(id, member, 0) {
            Some((bits, 0)) if bits % 8 == 0 => Ok(bits / 8),
            Some(_) => Err(BtfError::BitField {
                strukt: strukt.into(),
                member: member.into(),
            }),
            None => Err(BtfError::NoMember {
                strukt: strukt.into(),
                member: member.into(),
            }),
        }
    }

    /// The member's bit offset and bitfield size, searched through anonymous members at
    /// most `MAX_NESTING` deep (a hostile file may nest a type in itself).
    fn find_member_bits(&self, id: u32, member: &str, base: u32) -> Option<(u32, u32)> {
        self.find_member_bits_at(id, member, base, 0)
    }

    fn find_member_bits_at(
        &self,
        id: u32,
        member: &str,
        base: u32,
        depth: u32,
    ) -> Option<(u32, u32)> {
        /// Anonymous structs and unions nest a few levels in real kernels.
        const MAX_NESTING: u32 = 16;
        if depth > MAX_NESTING {
            return None;
        }
        let t = self.type_by_id(id)?;
        let ms = self.members(t);
        for m in ms {
            if self.name(m.name_off) == member {
                return Some((base.checked_add(m.bit_offset)?, m.bitfield_size));
            }
        }
        for m in ms {
            if m.name_off == 0 {
                let inner = self.skip_modifiers(m.type_id);
                let it = self.type_by_id(inner)?;
                if (it.kind == kind::STRUCT || it.kind == kind::UNION)
                    && let Some(found) = self.find_member_bits_at(
                        inner,
                        member,
                        base.checked_add(m.bit_offset)?,
                        depth + 1,
                    )
                {
                    return Some(found);
                }
            }
        }
        None
    }

    /// Follows typedef/const/volatile/restrict/type-tag chains.
    pub fn skip_modifiers(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.type_by_id(id) {
                Some(t)
                    if matches!(
                        t.kind,
                        kind::TYPEDEF
                            | kind::VOLATILE
                            | kind::CONST
                            | kind::RESTRICT
                            | kind::TYPE_TAG
                    ) =>
                {
                    id = t.size_or_type
                }
                _ => break,
            }
        }
        id
    }

    /// The value of enumerator `member` of `enum name` (low 32 bits).
    pub fn enum_value(&self, name: &str, member: &str) -> Option<u32> {
        let e = self
            .find(kind::ENUM, name)
            .or_else(|| self.find(kind::ENUM64, name))?;
        let t = self.type_by_id(e)?;
        self.members(t)
            .iter()
            .find(|m| self.name(m.name_off) == member)
            .map(|m| m.bit_offset)
    }

    /// Parameters of kernel function `func` as (name, type id), if BTF describes it.
    pub fn func_params(&self, func: &str) -> Option<Vec<(String, u32)>> {
        let f = self.type_by_id(self.find(kind::FUNC, func)?)?;
        let proto = self.type_by_id(f.size_or_type)?;
        (proto.kind == kind::FUNC_PROTO).then(|| {
            self.members(proto)
                .iter()
                .map(|m| (self.name(m.name_off).to_string(), m.type_id))
                .collect()
        })
    }
}

/// Builds small BTF blobs for tests.
#[cfg(test)]
pub(crate) mod build {
    #[derive(Default)]
    pub struct BtfBuilder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next_id: u32,
    }

    impl BtfBuilder {
        pub fn new() -> Self {
            Self {
                types: Vec::new(),
                strings: vec![0],
                next_id: 1,
            }
        }
        fn s(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            off
        }
        fn head(&mut self, name: &str, kind: u32, vlen: u32, kflag: bool, sot: u32) -> u32 {
            let n = self.s(name);
            let info = (vlen & 0xffff) | (kind << 24) | (u32::from(kflag) << 31);
            for v in [n, info, sot] {
                self.types.extend_from_slice(&v.to_le_bytes());
            }
            let id = self.next_id;
            self.next_id += 1;
            id
        }
        pub fn int(&mut self, name: &str, size: u32) -> u32 {
            let id = self.head(name, super::kind::INT, 0, false, size);
            self.types.extend_from_slice(&(size * 8).to_le_bytes());
            id
        }
        pub fn ptr(&mut self, to: u32) -> u32 {
            self.head("", super::kind::PTR, 0, false, to)
        }
        pub fn typedef(&mut self, name: &str, to: u32) -> u32 {
            self.head(name, super::kind::TYPEDEF, 0, false, to)
        }
        /// `members`: (name, type, bit offset, bitfield size).
        pub fn composite(
            &mut self,
            kind: u32,
            name: &str,
            size: u32,
            members: &[(&str, u32, u32, u32)],
        ) -> u32 {
            let kflag = members.iter().any(|m| m.3 != 0);
            let id = self.head(name, kind, members.len() as u32, kflag, size);
            for &(mname, ty, off, bits) in members {
                let n = self.s(mname);
                let o = if kflag { off | (bits << 24) } else { off };
                for v in [n, ty, o] {
                    self.types.extend_from_slice(&v.to_le_bytes());
                }
            }
            id
        }
        pub fn enumeration(&mut self, name: &str, values: &[(&str, u32)]) -> u32 {
            let id = self.head(name, super::kind::ENUM, values.len() as u32, false, 4);
            for &(vname, v) in values {
                let n = self.s(vname);
                for x in [n, v] {
                    self.types.extend_from_slice(&x.to_le_bytes());
                }
            }
            id
        }
        pub fn func(&mut self, name: &str, ret: u32, params: &[(&str, u32)]) -> u32 {
            let proto = self.head("", super::kind::FUNC_PROTO, params.len() as u32, false, ret);
            for &(pname, ty) in params {
                let n = self.s(pname);
                for v in [n, ty] {
                    self.types.extend_from_slice(&v.to_le_bytes());
                }
            }
            self.head(name, super::kind::FUNC, 0, false, proto)
        }
        pub fn finish(self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&0xeb9fu16.to_le_bytes());
            out.push(1);
            out.push(0);
            for v in [
                24u32,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::build::BtfBuilder;
    use super::*;

    /// A vm_area_struct shaped like 6.18's: vm_start/vm_end inside an anonymous struct inside an
    /// anonymous union, vm_flags inside an anonymous union.
    fn sample() -> Vec<u8> {
        let mut b = BtfBuilder::new();
        let ul = b.int("unsigned long", 8);
        let vmf = b.typedef("vm_flags_t", ul);
        let file = b.composite(kind::STRUCT, "file", 8, &[("f_inode", 0, 0, 0)]);
        let pfile = b.ptr(file);
        let inner = b.composite(
            kind::STRUCT,
            "",
            16,
            &[("vm_start", ul, 0, 0), ("vm_end", ul, 64, 0)],
        );
        let un1 = b.composite(
            kind::UNION,
            "",
            16,
            &[("", inner, 0, 0), ("vm_freeptr", ul, 0, 0)],
        );
        let un2 = b.composite(
            kind::UNION,
            "",
            8,
            &[("vm_flags", vmf, 0, 0), ("__vm_flags", vmf, 0, 0)],
        );
        let vma = b.composite(
            kind::STRUCT,
            "vm_area_struct",
            96,
            &[
                ("", un1, 0, 0),
                ("vm_mm", ul, 128, 0),
                ("", un2, 256, 0),
                ("vm_pgoff", ul, 640, 0),
                ("vm_file", pfile, 704, 0),
                ("bits", ul, 768, 3),
            ],
        );
        let pvma = b.ptr(vma);
        b.enumeration("pageflags", &[("PG_locked", 0), ("PG_head", 6)]);
        b.func("handle_mm_fault", ul, &[("vma", pvma), ("address", ul)]);
        b.finish()
    }

    #[test]
    fn finds_members_through_anonymous_unions() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(btf.member_offset("vm_area_struct", "vm_start"), Ok(0));
        assert_eq!(btf.member_offset("vm_area_struct", "vm_end"), Ok(8));
        assert_eq!(btf.member_offset("vm_area_struct", "vm_flags"), Ok(32));
        assert_eq!(btf.member_offset("vm_area_struct", "vm_pgoff"), Ok(80));
        assert_eq!(btf.member_offset("vm_area_struct", "vm_file"), Ok(88));
        assert_eq!(btf.member_offset("file", "f_inode"), Ok(0));
        assert_eq!(btf.enum_value("pageflags", "PG_head"), Some(6));
        assert_eq!(btf.enum_value("pageflags", "PG_nope"), None);
        assert_eq!(btf.enum_value("nope", "PG_head"), None);
    }

    #[test]
    fn reports_missing_and_bitfield_members() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(
            btf.member_offset("vm_area_struct", "nope"),
            Err(BtfError::NoMember {
                strukt: "vm_area_struct".into(),
                member: "nope".into()
            })
        );
        assert!(matches!(
            btf.member_offset("vm_area_struct", "bits"),
            Err(BtfError::BitField { .. })
        ));
        assert_eq!(
            btf.member_offset("mm_struct", "pgd"),
            Err(BtfError::NoStruct("mm_struct".into()))
        );
    }

    #[test]
    fn reads_function_parameters() {
        let btf = Btf::parse(&sample()).unwrap();
        let params = btf.func_params("handle_mm_fault").unwrap();
        let names: Vec<_> = params.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(names, ["vma", "address"]);
        assert!(btf.func_params("absent").is_none());
    }

    /// Found by the btf fuzzer: a struct whose anonymous member is itself recursed
    /// without end; offsets that overflow.
    #[test]
    fn survives_self_nesting_and_overflowing_offsets() {
        let mut b = BtfBuilder::new();
        let ul = b.int("unsigned long", 8);
        // Type 2 names itself as its anonymous member.
        let id = b.composite(kind::STRUCT, "loop", 8, &[("", 2, 0, 0), ("x", ul, 0, 0)]);
        assert_eq!(id, 2);
        b.composite(
            kind::STRUCT,
            "far",
            8,
            &[("", 4, u32::MAX - 1, 0), ("y", ul, 8, 0)],
        );
        b.composite(kind::STRUCT, "", 8, &[("z", ul, 64, 0)]);
        let btf = Btf::parse(&b.finish()).unwrap();
        assert!(btf.member_offset("loop", "nope").is_err());
        assert_eq!(btf.member_offset("loop", "x").unwrap(), 0);
        assert!(btf.member_offset("far", "z").is_err());
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert_eq!(
            Btf::parse(&[0, 0, 0, 0]).unwrap_err(),
            BtfError::BadMagic(0)
        );
        let mut blob = sample();
        blob.truncate(blob.len() - 40);
        assert!(matches!(Btf::parse(&blob), Err(BtfError::Truncated(_))));
        assert!(matches!(Btf::parse(&[0x9f]), Err(BtfError::Truncated(_))));
    }

    /// On a host with kernel BTF, the members every kernel since 5.x keeps at fixed offsets.
    #[test]
    fn host_kernel_btf_when_present() {
        let Ok(raw) = Btf::from_sys_fs() else {
            eprintln!("skipped: no /sys/kernel/btf/vmlinux on this host");
            return;
        };
        let btf = Btf::parse(&raw).expect("the running kernel's BTF parses");
        assert_eq!(btf.member_offset("vm_area_struct", "vm_start"), Ok(0));
        assert_eq!(btf.member_offset("vm_area_struct", "vm_end"), Ok(8));
        assert!(btf.member_offset("vm_area_struct", "vm_flags").is_ok());
        assert_eq!(btf.func_params("handle_mm_fault").map(|p| p.len()), Some(4));
        assert_eq!(btf.member_offset("vm_fault", "address"), Ok(24));
        assert!(btf.enum_value("pageflags", "PG_head").is_some());
        assert!(btf.member_offset("folio", "_flags_1").is_ok());
    }
}
