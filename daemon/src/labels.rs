//! `ConfigLabeler`: the engine's [`Labeler`] built from `[docker]` filters and `[labels]`.
//!
//! Decides which containers are collected (include/exclude rules) and the Loki stream
//! labels of each of their output streams. Promises:
//! - Every label name it produces follows Loki's rule `[a-zA-Z_][a-zA-Z0-9_]*`
//!   ([`sanitize_label_name`]); empty values are left out (Loki drops them anyway).
//! - `container` (the name) and `stream` (`stdout`/`stderr`) are always set; `image`
//!   and `compose_service` when enabled and known; then the allow-listed container
//!   labels; then the static labels. Config validation rejects static or container
//!   label names that would collide with these, so nothing is silently overwritten.
//! - Exclude wins over include; an empty include list includes every container.
//! - Pure and cheap: no I/O, called when a stream is (re)opened.

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::model::{Labels, StdStream};
use engine::port::ContainerInfo;
use engine::port::Labeler;

use crate::config::{Config, FilterSection};

/// Label names log-capturer sets itself; config may not define them.
pub const RESERVED_LABELS: [&str; 4] = ["container", "stream", "image", "compose_service"];

/// The Docker Compose service label.
pub const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";

/// Map any string to a valid Loki/Prometheus label name: every character outside
/// `[a-zA-Z0-9_]` becomes `_`, and a leading digit (or an empty name) gets a `_` prefix.
pub fn sanitize_label_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }));
    out
}

pub struct ConfigLabeler {
    include: FilterSection,
    exclude: FilterSection,
    image: bool,
    compose_service: bool,
    /// (container label key, sanitised stream label name).
    container_labels: Vec<(String, String)>,
    static_labels: BTreeMap<String, String>,
}

impl ConfigLabeler {
    pub fn new(config: &Config) -> ConfigLabeler {
        let labels = &config.labels;
        ConfigLabeler {
            include: config.docker.include.clone(),
            exclude: config.docker.exclude.clone(),
            image: labels.image,
            compose_service: labels.compose_service,
            container_labels: labels
                .container_labels
                .iter()
                .map(|key| (key.clone(), sanitize_label_name(key)))
                .collect(),
            static_labels: labels.static_labels.clone(),
        }
    }

    /// Whether a container is collected at all.
    pub fn selects(&self, info: &ContainerInfo) -> bool {
        let included = self.include.is_empty() || self.include.matches(&info.name, &info.labels);
        included && !self.exclude.matches(&info.name, &info.labels)
    }
}

impl Labeler for ConfigLabeler {
    fn labels(&self, info: &ContainerInfo, stream: StdStream) -> Option<Labels> {
        if !self.selects(info) {
            return None;
        }
        let mut labels = BTreeMap::new();
        let mut put = |name: &str, value: &str| {
            if !value.is_empty() {
                labels.insert(name.to_string(), value.to_string());
            }
        };
        put("container", &info.name);
        put("stream", stream.as_str());
        if self.image {
            put("image", &info.image);
        }
        if self.compose_service {
            if let Some(service) = info.labels.get(COMPOSE_SERVICE_LABEL) {
                put("compose_service", service);
            }
        }
        for (key, name) in &self.container_labels {
            if let Some(value) = info.labels.get(key) {
                put(name, value);
            }
        }
        for (name, value) in &self.static_labels {
            put(name, value);
        }
        Some(Arc::new(labels))
    }
}

#[cfg(test)]
mod tests {
    use engine::model::ContainerId;

    use super::*;

    fn container(name: &str, labels: &[(&str, &str)]) -> ContainerInfo {
        ContainerInfo {
            id: ContainerId::new("0123456789abcdef"),
            name: name.into(),
            image: "busybox:1.36".into(),
            labels: Arc::new(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            running: true,
            tty: false,
        }
    }

    fn labeler(toml: &str) -> ConfigLabeler {
        ConfigLabeler::new(&Config::parse(toml).unwrap())
    }

    fn render(labels: Option<Labels>) -> String {
        match labels {
            None => "excluded".to_string(),
            Some(labels) => labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        }
    }

    #[test]
    fn sanitizing_follows_loki_rules() {
        assert_eq!(sanitize_label_name("com.example.team"), "com_example_team");
        assert_eq!(sanitize_label_name("9lives"), "_9lives");
        assert_eq!(sanitize_label_name(""), "_");
        assert_eq!(sanitize_label_name("ok_Name9"), "ok_Name9");
        assert_eq!(sanitize_label_name("ünï-code"), "_n__code");
    }

    #[test]
    fn default_labels() {
        let labeler = labeler("");
        let web = container("web", &[("com.docker.compose.service", "frontend"), ("team", "a")]);
        assert_eq!(
            render(labeler.labels(&web, StdStream::Stderr)),
            "compose_service=frontend,container=web,image=busybox:1.36,stream=stderr"
        );
    }

    #[test]
    fn allow_listed_and_static_labels() {
        let labeler = labeler(
            r#"
            [labels]
            static = { job = "docker", host = "web-1" }
            image = false
            compose_service = false
            container_labels = ["com.example.team", "missing"]
            "#,
        );
        let web = container("web", &[("com.example.team", "payments"), ("other", "x")]);
        assert_eq!(
            render(labeler.labels(&web, StdStream::Stdout)),
            "com_example_team=payments,container=web,host=web-1,job=docker,stream=stdout"
        );
    }

    #[test]
    fn include_and_exclude() {
        let labeler = labeler(
            r#"
            [docker.include]
            names = ["app-.*"]
            labels = ["logging=on|yes"]
            [docker.exclude]
            names = ["app-debug"]
            labels = ["logging.off"]
            "#,
        );
        let selected = |name: &str, labels: &[(&str, &str)]| labeler.selects(&container(name, labels));
        assert!(selected("app-web", &[]));
        assert!(!selected("xapp-web", &[]), "names match the whole name");
        assert!(!selected("db", &[]));
        assert!(selected("db", &[("logging", "yes")]));
        assert!(!selected("db", &[("logging", "yes please")]), "values match whole");
        assert!(!selected("app-debug", &[]), "exclude wins");
        assert!(!selected("app-web", &[("logging.off", "")]), "a bare key matches presence");
        assert!(labeler.labels(&container("db", &[]), StdStream::Stdout).is_none());
    }

    #[test]
    fn empty_include_selects_everything() {
        let labeler = labeler("[docker.exclude]\nnames = [\"log-capturer\"]\n");
        assert!(labeler.selects(&container("anything", &[])));
        assert!(!labeler.selects(&container("log-capturer", &[])));
    }
}
