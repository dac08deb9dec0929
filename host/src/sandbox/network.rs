//! The sandboxes' own network: one Docker bridge per host owner with
//! inter-container traffic off, so sandboxes never share Docker's default
//! bridge or reach each other, and egress rules the host installs in
//! iptables (in chains of its own, jumped to from `DOCKER-USER` and
//! `INPUT`) and removes when it stops:
//!
//! * `internet` (default): replies and DNS to the machine's resolvers pass;
//!   link-local (169.254.0.0/16, where cloud metadata lives), private and
//!   shared ranges, and the machine's own addresses are dropped; the
//!   internet is reachable.
//! * `none`: nothing leaves the sandbox but replies to the host.
//! * `unfiltered`: no rules (for hosts where iptables is not available;
//!   the network is still separate and inter-container traffic off).
//!
//! IPv6 is not enabled on the network, so IPv4 rules cover it.

use std::collections::HashMap;
use std::process::Stdio;

use bollard::models::NetworkCreateRequest;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::SandboxError;

/// Where a sandbox may send traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Egress {
    #[default]
    Internet,
    None,
    Unfiltered,
}

/// Ranges a sandbox never reaches with `internet` egress.
pub const BLOCKED_RANGES: [&str; 7] = [
    "169.254.0.0/16", // link-local: cloud metadata services
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10", // carrier-grade NAT, some clouds' internal ranges
    "127.0.0.0/8",
    "0.0.0.0/8",
];

/// The names one host owner uses: its Docker network, its bridge
/// interface and its iptables chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkNames {
    pub network: String,
    pub bridge: String,
    pub forward_chain: String,
    pub input_chain: String,
}

impl NetworkNames {
    pub fn for_owner(owner: &str) -> Self {
        // Interface names have at most 15 bytes; chain names 28.
        let tag = &hex::encode(Sha256::digest(owner.as_bytes()))[..10];
        Self {
            network: format!("agenthost-{owner}"),
            bridge: format!("ahbr{tag}"),
            forward_chain: format!("AH-{tag}-FWD"),
            input_chain: format!("AH-{tag}-IN"),
        }
    }
}

/// Makes the owner's network if it is missing.
pub async fn ensure_network(
    client: &bollard::Docker,
    names: &NetworkNames,
    owner_label: (&str, &str),
) -> Result<(), SandboxError> {
    if client
        .inspect_network(
            &names.network,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .is_ok()
    {
        return Ok(());
    }
    let request = NetworkCreateRequest {
        name: names.network.clone(),
        driver: Some("bridge".into()),
        enable_ipv6: Some(false),
        options: Some(HashMap::from([
            (
                "com.docker.network.bridge.enable_icc".to_string(),
                "false".to_string(),
            ),
            (
                "com.docker.network.bridge.name".to_string(),
                names.bridge.clone(),
            ),
        ])),
        labels: Some(HashMap::from([(
            owner_label.0.to_string(),
            owner_label.1.to_string(),
        )])),
        ..Default::default()
    };
    client.create_network(request).await?;
    Ok(())
}

/// The nameservers this machine uses (sandboxes' DNS goes through them).
fn resolvers() -> Vec<String> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(str::trim)
        .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_string)
        .collect()
}

/// The rules for each chain, as `iptables` argument lists (after `-A CHAIN`).
pub fn rules(egress: Egress) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let established = s(&[
        "-m",
        "conntrack",
        "--ctstate",
        "RELATED,ESTABLISHED",
        "-j",
        "RETURN",
    ]);
    let mut forward = vec![established.clone()];
    let mut input = vec![established];
    match egress {
        Egress::Unfiltered => return (Vec::new(), Vec::new()),
        Egress::None => {}
        Egress::Internet => {
            for dns in resolvers() {
                for proto in ["udp", "tcp"] {
                    let rule = s(&["-d", &dns, "-p", proto, "--dport", "53", "-j", "RETURN"]);
                    forward.push(rule.clone());
                    input.push(rule);
                }
            }
            for range in BLOCKED_RANGES {
                forward.push(s(&["-d", range, "-j", "DROP"]));
            }
        }
    }
    // The rest: out to the internet with `internet` egress, dropped with
    // `none`; to the machine itself, always dropped.
    forward.push(match egress {
        Egress::Internet => s(&["-j", "RETURN"]),
        _ => s(&["-j", "DROP"]),
    });
    input.push(s(&["-j", "DROP"]));
    (forward, input)
}

async fn iptables(args: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new("iptables")
        .args(["-w", "5"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run iptables: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Installs the egress rules (replacing any this owner left behind).
pub async fn install_rules(names: &NetworkNames, egress: Egress) -> Result<(), SandboxError> {
    remove_rules(names).await;
    if egress == Egress::Unfiltered {
        tracing::warn!(
            "sandbox egress is unfiltered: sandboxes can reach private and link-local addresses"
        );
        return Ok(());
    }
    let fail = |e: String| {
        SandboxError::Network(format!(
            "{e}. The host needs root and iptables to confine sandboxes; \
             set [sandbox] egress = \"unfiltered\" to run without these rules"
        ))
    };
    let (forward, input) = rules(egress);
    for (chain, parent, rules) in [
        (&names.forward_chain, "DOCKER-USER", forward),
        (&names.input_chain, "INPUT", input),
    ] {
        iptables(&["-N", chain]).await.map_err(fail)?;
        for rule in &rules {
            let mut args = vec!["-A", chain.as_str()];
            args.extend(rule.iter().map(String::as_str));
            iptables(&args).await.map_err(fail)?;
        }
        iptables(&["-I", parent, "1", "-i", &names.bridge, "-j", chain])
            .await
            .map_err(fail)?;
    }
    Ok(())
}

/// Removes the owner's rules and chains; missing ones are fine.
pub async fn remove_rules(names: &NetworkNames) {
    for (chain, parent) in [
        (&names.forward_chain, "DOCKER-USER"),
        (&names.input_chain, "INPUT"),
    ] {
        while iptables(&["-D", parent, "-i", &names.bridge, "-j", chain])
            .await
            .is_ok()
        {}
        let _ = iptables(&["-F", chain]).await;
        let _ = iptables(&["-X", chain]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_and_iptables() {
        let n = NetworkNames::for_owner(&"x".repeat(200));
        assert!(n.bridge.len() <= 15);
        assert!(n.forward_chain.len() <= 28 && n.input_chain.len() <= 28);
        assert_ne!(NetworkNames::for_owner("a"), NetworkNames::for_owner("b"));
    }

    #[test]
    fn internet_egress_drops_link_local_and_private_ranges() {
        let (forward, input) = rules(Egress::Internet);
        let flat: Vec<String> = forward.iter().map(|r| r.join(" ")).collect();
        for range in BLOCKED_RANGES {
            assert!(flat.contains(&format!("-d {range} -j DROP")), "{flat:?}");
        }
        assert_eq!(input.last().unwrap().join(" "), "-j DROP");
        assert_eq!(forward.last().unwrap().join(" "), "-j RETURN");
        let (forward, _) = rules(Egress::None);
        assert_eq!(forward.last().unwrap().join(" "), "-j DROP");
        assert!(!forward.iter().any(|r| r.join(" ") == "-j RETURN"));
        assert_eq!(rules(Egress::Unfiltered), (vec![], vec![]));
    }
}
