//! The kinematic-constraint YAML (SPEC.md §5.1), parsed and validated in
//! FastSpecFit's order.

use std::collections::BTreeSet;
use std::path::Path;

use fsf_systems::kernels::emlines::table::{
    Constraints, DoubletRatio, FixedRatio, GroupFinalPass, KinBounds, KinGroup, LineTable, Profile,
    ProfileFinalPass,
};
use serde_yaml::Value;

use crate::io::IoError;

type R<T> = Result<T, String>;

fn get<'a>(v: &'a Value, key: &str, ctx: &str) -> R<&'a Value> {
    v.get(key)
        .ok_or_else(|| format!("missing key '{key}' in {ctx}"))
}

fn f64_of(v: &Value, ctx: &str) -> R<f64> {
    v.as_f64()
        .or_else(|| v.as_i64().map(|i| i as f64))
        .ok_or_else(|| format!("{ctx} is not a number"))
}

fn num(v: &Value, key: &str, ctx: &str) -> R<f64> {
    f64_of(get(v, key, ctx)?, &format!("{ctx}.{key}"))
}

fn truthy(v: &Value, ctx: &str) -> R<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => Ok(n.as_f64().is_some_and(|x| x != 0.0)),
        Value::Null => Ok(false),
        Value::String(s) => Ok(!s.is_empty()),
        _ => Err(format!("{ctx} is not a boolean")),
    }
}

fn string(v: &Value, key: &str, ctx: &str) -> R<String> {
    match get(v, key, ctx)? {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(if *b { "True".into() } else { "False".into() }),
        _ => Err(format!("{ctx}.{key} is not a string")),
    }
}

/// A list under `key` (absent or null → empty).
fn list<'a>(v: &'a Value, key: &str, ctx: &str) -> R<&'a [Value]> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Sequence(s)) => Ok(s.as_slice()),
        Some(_) => Err(format!("'{key}' in {ctx} is not a list")),
    }
}

fn names(v: &Value, key: &str, ctx: &str) -> R<Vec<String>> {
    list(v, key, ctx)?
        .iter()
        .map(|x| {
            x.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("non-string entry in {ctx}.{key}"))
        })
        .collect()
}

fn bounds_of(g: &Value, ctx: &str) -> R<KinBounds> {
    let b = get(g, "bounds", ctx)?;
    let i = get(g, "initial", ctx)?;
    let (sb, vb) = (get(b, "sigma", ctx)?, get(b, "vshift", ctx)?);
    Ok(KinBounds {
        sigma_min: num(sb, "min", ctx)?,
        sigma_max: num(sb, "max", ctx)?,
        vshift_max: num(vb, "max", ctx)?,
        sigma_init: num(i, "sigma", ctx)?,
        vshift_init: num(i, "vshift", ctx)?,
    })
}

fn group(g: &Value, context: &str, doublet_lines: &BTreeSet<String>) -> R<KinGroup> {
    let name = string(g, "name", context)?;
    let Some(fp) = g.get("final_pass") else {
        return Err(format!(
            "Kinematic group '{name}' in {context} is missing required 'final_pass' block."
        ));
    };
    for key in ["free_vshift", "free_sigma"] {
        if fp.get(key).is_none() {
            return Err(format!(
                "Group '{name}' final_pass in {context} is missing required key '{key}'."
            ));
        }
    }
    let opt = |key: &str| -> R<Option<f64>> {
        match fp.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => f64_of(v, key).map(Some),
        }
    };
    let ctx = format!("group '{name}' in {context}");
    let anchor = string(g, "anchor", &ctx)?;
    let members = names(g, "members", &ctx)?;
    let locked_members = members
        .iter()
        .chain(std::iter::once(&anchor))
        .filter(|m| doublet_lines.contains(*m))
        .cloned()
        .collect();
    let final_pass = GroupFinalPass {
        free_vshift: truthy(get(fp, "free_vshift", &ctx)?, "free_vshift")?,
        free_sigma: truthy(get(fp, "free_sigma", &ctx)?, "free_sigma")?,
        delta_vshift_max: opt("delta_vshift_max")?,
        delta_sigma_max: opt("delta_sigma_max")?,
        locked_members,
    };
    Ok(KinGroup {
        bounds: bounds_of(g, &ctx)?,
        name,
        anchor,
        members,
        final_pass,
    })
}

fn parse(raw: &Value) -> R<Constraints> {
    let ac = get(raw, "amplitude_constraints", "the constraint file")?;
    let mut amplitude_fixed = Vec::new();
    for f in list(ac, "fixed", "amplitude_constraints")? {
        let ctx = "amplitude_constraints.fixed";
        amplitude_fixed.push(FixedRatio {
            line: string(f, "line", ctx)?,
            ref_line: string(f, "ref", ctx)?,
            factor: num(f, "factor", ctx)?,
            param_name: match f.get("param_name") {
                None | Some(Value::Null) => String::new(),
                Some(_) => string(f, "param_name", ctx)?,
            },
        });
    }
    let mut doublet_ratios = Vec::new();
    for d in list(ac, "doublet_ratios", "amplitude_constraints")? {
        let ctx = "amplitude_constraints.doublet_ratios";
        let b = get(d, "bounds", ctx)?;
        doublet_ratios.push(DoubletRatio {
            line: string(d, "line", ctx)?,
            ref_line: string(d, "ref", ctx)?,
            param_name: string(d, "param_name", ctx)?,
            min: num(b, "min", ctx)?,
            max: num(b, "max", ctx)?,
            initial: num(d, "initial", ctx)?,
        });
    }
    let g = get(raw, "global", "the constraint file")?;
    let db = get(g, "default_bounds", "global")?;
    let di = get(g, "default_initial", "global")?;
    let global_default = KinBounds {
        sigma_min: num(
            get(db, "sigma", "global.default_bounds")?,
            "min",
            "global.default_bounds.sigma",
        )?,
        sigma_max: num(
            get(db, "sigma", "global.default_bounds")?,
            "max",
            "global.default_bounds.sigma",
        )?,
        vshift_max: num(
            get(db, "vshift", "global.default_bounds")?,
            "max",
            "global.default_bounds.vshift",
        )?,
        sigma_init: num(di, "sigma", "global.default_initial")?,
        vshift_init: num(di, "vshift", "global.default_initial")?,
    };
    let mut c = Constraints {
        amplitude_fixed,
        doublet_ratios,
        global_default,
        global_free_lines: names(g, "free_lines", "global")?,
        global_kinematic_groups: Vec::new(),
        profiles: Vec::new(),
        moments: Vec::new(),
    };
    let doublet_lines = c.doublet_lines();
    for kg in list(g, "kinematic_groups", "global")? {
        c.global_kinematic_groups
            .push(group(kg, "global", &doublet_lines)?);
    }
    let profiles = get(raw, "profiles", "the constraint file")?
        .as_mapping()
        .ok_or("'profiles' is not a mapping")?;
    for (pname, p) in profiles {
        let pname = pname.as_str().ok_or("non-string profile name")?.to_owned();
        let ctx = format!("profile '{pname}'");
        let mut kinematic_groups = Vec::new();
        for kg in list(p, "kinematic_groups", &ctx)? {
            kinematic_groups.push(group(kg, &ctx, &doublet_lines)?);
        }
        let Some(fp) = p.get("final_pass") else {
            return Err(format!(
                "Constraint profile '{pname}' is missing required 'final_pass' block."
            ));
        };
        let missing: Vec<&str> = ["adopt_if", "enabled", "inherit_in_mc", "warm_start"]
            .into_iter()
            .filter(|k| fp.get(*k).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "Profile '{pname}' final_pass is missing keys: {missing:?}"
            ));
        }
        let final_pass = ProfileFinalPass {
            enabled: truthy(get(fp, "enabled", &ctx)?, "enabled")?,
            warm_start: truthy(get(fp, "warm_start", &ctx)?, "warm_start")?,
            adopt_if: string(fp, "adopt_if", &ctx)?,
            inherit_in_mc: truthy(get(fp, "inherit_in_mc", &ctx)?, "inherit_in_mc")?,
        };
        c.profiles.push(Profile {
            free_lines: names(p, "free_lines", &ctx)?,
            fixed_lines: names(p, "fixed_lines", &ctx)?,
            name: pname,
            kinematic_groups,
            final_pass,
        });
    }
    for m in list(raw, "moments", "the constraint file")? {
        let label = string(m, "label", "moments")?;
        let lines = names(m, "lines", "moments")?;
        match c.moments.iter_mut().find(|(l, _)| *l == label) {
            Some(slot) => slot.1 = lines,
            None => c.moments.push((label, lines)),
        }
    }
    Ok(c)
}

/// Parse constraint YAML text; with `table`, run FastSpecFit's consistency
/// check. `origin` names the file in errors.
///
/// # Errors
/// [`IoError::Input`] with FastSpecFit's message.
pub fn parse_constraints(
    text: &str,
    origin: &Path,
    table: Option<&LineTable>,
) -> Result<Constraints, IoError> {
    let raw: Value = serde_yaml::from_str(text)
        .map_err(|e| IoError::input(origin, format!("bad constraint YAML: {e}")))?;
    let c = parse(&raw).map_err(|m| IoError::input(origin, m))?;
    if let Some(t) = table {
        c.check_consistency(t)
            .map_err(|m| IoError::input(origin, m))?;
    }
    Ok(c)
}
