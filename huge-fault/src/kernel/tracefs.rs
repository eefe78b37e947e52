//! Tracepoint format files: field offsets the programs assume, checked before attaching.

/// The offset of a field in a tracepoint `format` file.
pub fn tracepoint_field_offset(format: &str, name: &str) -> Option<u32> {
    let line = format.lines().find(|l| {
        l.trim_start().starts_with("field:")
            && l.split(';')
                .next()
                .is_some_and(|d| d.trim_end().rsplit([' ', '*']).next() == Some(name))
    })?;
    line.split(';')
        .find_map(|p| p.trim().strip_prefix("offset:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Field offsets of `exceptions:page_fault_user` the programs assume.
pub const EXCEPTION_FIELDS: &[(&str, u32)] = huge_fault_common::config::exception_fields::ALL;

/// Checks a tracepoint `format` file against the offsets the programs assume.
pub fn check_tracepoint_format(format: &str, fields: &[(&str, u32)]) -> Result<(), String> {
    for &(name, want) in fields {
        let offset = tracepoint_field_offset(format, name)
            .ok_or_else(|| format!("field `{name}` missing"))?;
        if offset != want {
            return Err(format!(
                "field `{name}` at offset {offset}, programs expect {want}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracepoint_format_is_checked_against_the_programs() {
        // The format file of the host kernel (6.18), as tracefs prints it.
        let format = "name: page_fault_user\nID: 123\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
            \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
            \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
            \tfield:unsigned long address;\toffset:8;\tsize:8;\tsigned:0;\n\
            \tfield:unsigned long ip;\toffset:16;\tsize:8;\tsigned:0;\n\
            \tfield:unsigned long error_code;\toffset:24;\tsize:8;\tsigned:0;\n";
        assert_eq!(check_tracepoint_format(format, EXCEPTION_FIELDS), Ok(()));
        let moved = format.replace("offset:24", "offset:32");
        assert_eq!(
            check_tracepoint_format(&moved, EXCEPTION_FIELDS),
            Err("field `error_code` at offset 32, programs expect 24".into())
        );
        let missing = format.replace("error_code", "err");
        assert!(check_tracepoint_format(&missing, EXCEPTION_FIELDS).is_err());
    }

    #[test]
    fn fork_child_pid_offset_from_old_and_new_layouts() {
        // 6.18: comms as __data_loc.
        let new = "\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\
                   \tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n\
                   \tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;\n\
                   \tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n";
        assert_eq!(tracepoint_field_offset(new, "child_pid"), Some(20));
        // 6.1: fixed 16-byte comms.
        let old = "\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
                   \tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;\n\
                   \tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;\n\
                   \tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;\n";
        assert_eq!(tracepoint_field_offset(old, "child_pid"), Some(44));
        assert_eq!(tracepoint_field_offset(old, "nope"), None);
    }
}
