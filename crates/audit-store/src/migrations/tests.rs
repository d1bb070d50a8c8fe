#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn splits_statements_and_drops_comments() {
    let sql = "-- a comment; with a semicolon\nCREATE TABLE a (x UInt8);\n\nCREATE TABLE b\n(\n  y UInt8 -- inline\n);\n";
    let statements = statements(sql);
    assert_eq!(statements.len(), 2);
    assert!(statements[0].starts_with("CREATE TABLE a"));
    assert!(statements[1].contains("y UInt8"));
}

#[test]
fn migrations_are_ordered_and_unique() {
    let versions: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
    let mut sorted = versions.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(versions, sorted);
    for layout in [SchemaLayout::SingleNode, replicated(), sharded()] {
        for migration in MIGRATIONS {
            let statements = statements(&migration.sql(&layout));
            assert!(!statements.is_empty(), "{} in {layout:?}", migration.name);
            assert!(statements.iter().all(|s| !s.trim().is_empty()));
        }
    }
}

#[test]
fn every_layout_renders_the_migrations_as_released() {
    // Databases record the checksum of the text their layout got when the layouts still had a
    // file each (these fixtures): a byte changed would make `migrate` warn about an edit.
    let released = [
        (
            SchemaLayout::SingleNode,
            [
                include_str!("../../tests/fixtures/migrations/single_node/0001_events.sql"),
                include_str!("../../tests/fixtures/migrations/single_node/0002_provenance.sql"),
                include_str!("../../tests/fixtures/migrations/single_node/0003_integrity.sql"),
                include_str!("../../tests/fixtures/migrations/single_node/0004_packed_leaves.sql"),
            ],
        ),
        (
            replicated(),
            [
                include_str!("../../tests/fixtures/migrations/replicated/0001_events.sql"),
                include_str!("../../tests/fixtures/migrations/replicated/0002_provenance.sql"),
                include_str!("../../tests/fixtures/migrations/replicated/0003_integrity.sql"),
                include_str!("../../tests/fixtures/migrations/replicated/0004_packed_leaves.sql"),
            ],
        ),
        (
            sharded(),
            [
                include_str!("../../tests/fixtures/migrations/sharded/0001_events.sql"),
                include_str!("../../tests/fixtures/migrations/sharded/0002_provenance.sql"),
                include_str!("../../tests/fixtures/migrations/sharded/0003_integrity.sql"),
                include_str!("../../tests/fixtures/migrations/sharded/0004_packed_leaves.sql"),
            ],
        ),
    ];
    for (layout, texts) in released {
        assert_eq!(MIGRATIONS.len(), texts.len());
        for (migration, text) in MIGRATIONS.iter().zip(texts) {
            assert_eq!(
                migration.sql(&layout),
                text,
                "{} in {layout:?}",
                migration.name
            );
        }
    }
}

#[test]
fn every_layout_line_names_known_layouts() {
    for migration in MIGRATIONS {
        for line in migration.source.lines() {
            if let Some(layouts) = line.strip_prefix(LAYOUT_MARKER) {
                assert!(
                    layouts.split_whitespace().all(|name| {
                        ["all", "single_node", "replicated", "sharded"].contains(&name)
                    }),
                    "{}: {line}",
                    migration.name
                );
            }
        }
    }
}

fn replicated() -> SchemaLayout {
    SchemaLayout::Replicated {
        cluster: "audit_cluster".into(),
    }
}

#[test]
fn replicated_schema_renders_replicated_tables_behind_a_distributed_table() {
    let rendered = replicated().render(&MIGRATIONS[0], "audit_prod");
    assert_eq!(rendered.len(), 2, "{rendered:#?}");
    let (local, distributed) = (&rendered[0], &rendered[1]);

    assert!(local.starts_with(
        "CREATE TABLE IF NOT EXISTS audit_prod.events_local ON CLUSTER 'audit_cluster'"
    ));
    // {database} is ours to fill; {shard} and {replica} are the servers' macros.
    assert!(local.contains(
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/audit_prod/events_local', '{replica}', version)"
    ));
    assert!(local.contains("ORDER BY (org_id, occurred_at, id)"));
    assert!(local.contains("TTL toDateTime(occurred_at) + toIntervalDay(retention_days)"));
    assert!(!local.contains("non_replicated_deduplication_window"));

    assert!(
        distributed
            .starts_with("CREATE TABLE IF NOT EXISTS audit_prod.events ON CLUSTER 'audit_cluster'")
    );
    assert!(distributed.contains("AS audit_prod.events_local"));
    assert!(distributed.contains(
        "ENGINE = Distributed('audit_cluster', audit_prod, events_local, cityHash64(org_id))"
    ));

    for statement in &rendered {
        assert!(!statement.contains("{database}") && !statement.contains("{cluster}"));
        assert!(
            !statement.contains("--"),
            "comments are dropped: {statement}"
        );
        assert!(!statement.ends_with(';'));
    }
}

#[test]
fn replicated_schema_has_the_single_node_columns_and_indexes() {
    // Everything between the opening parenthesis and the engine must be identical, so
    // both layouts store and index the same rows.
    fn body(sql: &str) -> &str {
        let start = sql.find("\n(\n").expect("column list");
        let end = sql.find("\nENGINE").expect("engine");
        &sql[start..end]
    }
    let events = |layout: &SchemaLayout| MIGRATIONS[0].sql(layout);
    let single_node = events(&SchemaLayout::SingleNode);
    assert_eq!(body(&single_node), body(&events(&replicated())));
    assert_eq!(body(&single_node), body(&events(&sharded())));
}

fn sharded() -> SchemaLayout {
    SchemaLayout::Sharded {
        cluster: "audit_shards".into(),
    }
}

#[test]
fn sharded_schema_renders_local_tables_behind_a_distributed_table_without_on_cluster() {
    let rendered = sharded().render(&MIGRATIONS[0], "audit_prod");
    assert_eq!(rendered.len(), 2, "{rendered:#?}");
    let (local, distributed) = (&rendered[0], &rendered[1]);
    assert!(local.starts_with("CREATE TABLE IF NOT EXISTS audit_prod.events_local\n("));
    assert!(local.contains("ENGINE = ReplacingMergeTree(version)"));
    // Everything after the engine (partitioning, key, TTL, settings) is the single node's.
    let tail = |sql: &str| sql[sql.find("ENGINE").expect("engine")..].to_string();
    assert_eq!(
        tail(local),
        tail(&SchemaLayout::SingleNode.render(&MIGRATIONS[0], "audit_prod")[0])
    );
    assert_eq!(
        distributed,
        "CREATE TABLE IF NOT EXISTS audit_prod.events\nAS audit_prod.events_local\n\
         ENGINE = Distributed('audit_shards', audit_prod, events_local, cityHash64(org_id))"
    );
    for statement in script("audit_prod", &sharded()) {
        assert!(!statement.contains("ON CLUSTER"), "{statement}");
        assert!(
            !statement.contains('{'),
            "placeholders replaced: {statement}"
        );
    }
    let [_, bookkeeping] = sharded().bookkeeping("audit");
    assert!(bookkeeping.ends_with("ENGINE = MergeTree ORDER BY version"));
}

#[test]
fn cluster_layouts_shard_by_organization_alike() {
    // The sharding key decides which shard holds every copy of an event: both cluster
    // layouts must use the same one.
    let key = |layout: &SchemaLayout, migration: &Migration| {
        let rendered = layout.render(migration, "db").join("\n");
        let start = rendered.find("Distributed(").expect("distributed");
        rendered[start..]
            .replace("audit_cluster", "C")
            .replace("audit_shards", "C")
    };
    assert_eq!(
        key(&replicated(), &MIGRATIONS[0]),
        key(&sharded(), &MIGRATIONS[0])
    );
}

#[test]
fn single_node_rendering_replaces_only_the_database() {
    let rendered = SchemaLayout::SingleNode.render(&MIGRATIONS[0], "audit");
    assert_eq!(rendered.len(), 1);
    assert!(rendered[0].starts_with("CREATE TABLE IF NOT EXISTS audit.events\n("));
    assert!(rendered[0].contains("ENGINE = ReplacingMergeTree(version)"));
    assert!(!rendered[0].contains("ON CLUSTER"));
}

#[test]
fn the_script_is_bookkeeping_then_every_migration() {
    let script = script("audit", &replicated());
    assert_eq!(script.len(), 12);
    assert!(script[0].starts_with("CREATE DATABASE"));
    assert!(script[1].contains(".schema_migrations"));
    assert!(script[2].contains(".events_local"));
    assert!(script[3].contains("Distributed("));
    // 0002: the provenance column on the replicated tables and the Distributed one.
    assert!(script[4].starts_with("ALTER TABLE audit.events_local ON CLUSTER"));
    assert!(script[5].starts_with("ALTER TABLE audit.events ON CLUSTER"));
    // 0003: the integrity tables, local and Distributed.
    assert!(script[6].contains("audit.integrity_digests_local"));
    assert!(script[7].contains("Distributed("));
    assert!(script[8].contains("audit.integrity_leaves_local"));
    assert!(script[9].contains("Distributed("));
    // 0004: the packed windows, local and Distributed.
    assert!(script[10].contains("audit.integrity_windows_local"));
    assert!(script[11].contains("Distributed("));
    assert!(
        script
            .iter()
            .all(|s| s.contains("ON CLUSTER 'audit_cluster'"))
    );
}

#[test]
fn bookkeeping_runs_on_the_cluster_with_a_replicated_table() {
    let [database, table] = replicated().bookkeeping("audit");
    assert_eq!(
        database,
        "CREATE DATABASE IF NOT EXISTS audit ON CLUSTER 'audit_cluster'"
    );
    assert!(table.starts_with(
        "CREATE TABLE IF NOT EXISTS audit.schema_migrations ON CLUSTER 'audit_cluster' ("
    ));
    assert!(table.contains(
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/audit/schema_migrations', '{shard}-{replica}')"
    ));

    let [database, table] = SchemaLayout::SingleNode.bookkeeping("audit");
    assert_eq!(database, "CREATE DATABASE IF NOT EXISTS audit");
    assert!(table.ends_with("ENGINE = MergeTree ORDER BY version"));
    assert!(!table.contains("ON CLUSTER"));
}
