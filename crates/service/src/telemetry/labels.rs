//! The bounded label values of the metrics, as enums: a use site names a variant (a typo does not
//! compile), and the registration creates every series at zero from `ALL` (a new variant cannot be
//! missing from the metric). Enums that belong to a stage stay there and offer the same
//! (`Reason::ALL`, `Ignored::ALL`, `TransientCause::each`, `VerifyError::each`); these are the
//! labels that only telemetry gives a name.

/// An enum of label values: `ALL` in declaration order and `as_str`.
macro_rules! labels {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The label value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// Every label value, for registering the series at zero.
            pub fn values() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.as_str()).collect()
            }
        }
    };
}

labels! {
    /// A probe of WeChat Pay (`catering_sync_probes_total{probe}`).
    Probe {
        /// Sent by the open breaker after its cooldown.
        Breaker => "breaker",
        /// Sent while a deployment fault (401/403) holds every body back.
        DeploymentFault => "deployment_fault",
    }
}

labels! {
    /// What a probe got (`catering_sync_probes_total{outcome}`).
    ProbeOutcome {
        /// WeChat Pay answered (whatever it said of the probe body).
        Answered => "answered",
        /// A 401/403: the deployment fault holds.
        DeploymentFault => "deployment_fault",
        /// A 429.
        Throttled => "throttled",
        /// No answer, or a 5xx.
        Failed => "failed",
    }
}

labels! {
    /// The topic a state write went to (`topic` label).
    StateTopic {
        /// Changelog records, tombstones and fences.
        Changelog => "changelog",
        /// Dead letters (whole or truncated).
        DeadLetter => "dead_letter",
    }
}

labels! {
    /// Why a changelog or dead-letter write failed (`catering_sync_state_write_failures_total{kind}`).
    WriteFailure {
        /// The record exceeds the topic's or the producer's size limit.
        TooLarge => "too_large",
        /// The topic or partition does not exist.
        UnknownTopic => "unknown_topic",
        /// Authentication or authorisation was refused.
        Authorization => "authorization",
        /// The producer is fenced or in a fatal state.
        Fatal => "fatal",
        /// No acknowledgement within the delivery timeout.
        Timeout => "timeout",
        /// Anything else.
        Other => "other",
    }
}

labels! {
    /// Why an offset commit failed (`catering_sync_commit_failures_total{kind}`).
    CommitFailure {
        /// No coordinator available, or not the coordinator.
        Coordinator => "coordinator",
        /// A rebalance in progress, or this member's generation is gone.
        Rebalance => "rebalance",
        /// No answer in time.
        Timeout => "timeout",
        /// No connection to the brokers.
        Transport => "transport",
        /// Anything else.
        Other => "other",
    }
}

labels! {
    /// An ownership safety event (`catering_sync_fencing_events_total{kind}`).
    Fencing {
        /// A changelog record written after a newer owner's fence, skipped on restore.
        StaleRecordIgnored => "stale_record_ignored",
        /// Tasks aborted at the drain bound.
        DrainAborted => "drain_aborted",
        /// Revoked without a drain (session timeout or poll interval exceeded).
        AssignmentLost => "assignment_lost",
        /// Exited rather than overlap with the next owner.
        UnquietExit => "unquiet_exit",
        /// An order task panicked: exited to restart from the write-ahead state.
        TaskPanicked => "task_panicked",
    }
}

labels! {
    /// A rebalance callback (`catering_sync_rebalances_total{kind}`).
    RebalanceKind {
        /// Partitions assigned.
        Assign => "assign",
        /// Partitions revoked (or lost).
        Revoke => "revoke",
    }
}

labels! {
    /// Which retention an order was past (`catering_sync_orders_expired_total{state}`).
    Expiry {
        /// Acknowledged as paid longer than `state.final_retention_secs` ago.
        Final => "final",
        /// Any other order, unchanged for `state.non_final_retention_secs`.
        NonFinal => "non_final",
    }
}

labels! {
    /// How a key reload ended (`catering_sync_key_reloads_total{outcome}`).
    KeyReload {
        /// The new keys are in use.
        Ok => "ok",
        /// The keys in use were kept.
        Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_unique_snake_case() {
        for values in [
            Probe::values(),
            ProbeOutcome::values(),
            StateTopic::values(),
            WriteFailure::values(),
            CommitFailure::values(),
            Fencing::values(),
            RebalanceKind::values(),
            Expiry::values(),
            KeyReload::values(),
        ] {
            let mut seen = std::collections::BTreeSet::new();
            for v in values {
                assert!(seen.insert(v), "{v} twice");
                assert!(
                    v.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{v}"
                );
            }
        }
    }
}

labels! {
    /// What started a platform-certificate download
    /// (`catering_sync_certificate_downloads_total{trigger}`).
    CertificateTrigger {
        /// Start-up, or the periodic refresh.
        Scheduled => "scheduled",
        /// An answer named a serial the service did not have.
        UnknownSerial => "unknown_serial",
    }
}

labels! {
    /// How a platform-certificate download ended (`catering_sync_certificate_downloads_total{outcome}`).
    DownloadOutcome {
        /// Decrypted, verified and in use.
        Ok => "ok",
        /// The certificates held are kept; the log says why.
        Failed => "failed",
    }
}

labels! {
    /// A WeChat Pay endpoint (`catering_sync_wechatpay_endpoint_active{endpoint}`).
    Endpoint {
        /// `wechatpay.base_url`.
        Primary => "primary",
        /// `wechatpay.backup_base_url`.
        Backup => "backup",
    }
}
