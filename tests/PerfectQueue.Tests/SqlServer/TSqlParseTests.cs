using System.Text.Json;
using Microsoft.SqlServer.TransactSql.ScriptDom;
using PerfectQueue.Storage.SqlServer;
using Xunit;

namespace PerfectQueue.Tests.SqlServer;

/// <summary>
/// No SQL Server runs here, so every statement the SQL Server store can send is checked statically: it
/// parses for SQL Server 2016 (the oldest supported: compatibility level 130) and for the newest parser,
/// every variable is declared in the batch or supplied by the call site with the same spelling, every
/// function exists in SQL Server 2016, and every OPENJSON path names what the store serializes.
/// </summary>
public sealed class TSqlParseTests
{
    private const string Table = "tasks_test";
    private static readonly SqlServerQueueStore Store = new("Server=localhost;Database=pq;Integrated Security=true", Table, "sqlserver://localhost/pq (table tasks_test)");
    private static readonly IReadOnlyList<(string Name, string Sql, object? Parameters)> All = Store.Statements().ToList();

    public static TheoryData<string> StatementNames() => new(All.Select(s => s.Name));

    private static (string Name, string Sql, object? Parameters) Statement(string name) => All.Single(s => s.Name == name);

    private static readonly TSqlParser[] Parsers = [new TSql130Parser(true), new TSql160Parser(true), new TSql180Parser(true)];

    private static TSqlFragment Parse(string sql, TSqlParser? parser = null) => TSqlTree.Parse(sql, parser ?? Parsers[^1]);

    private static List<T> Find<T>(TSqlFragment fragment) where T : TSqlFragment => TSqlTree.Find<T>(fragment);

    [Fact]
    public void Every_kind_of_statement_is_listed()
    {
        var names = All.Select(s => s.Name).ToList();
        Assert.Equal(names.Count, names.Distinct().Count());
        foreach (var name in new[] { "now", "is_initialized", "submit", "acquire", "heartbeat", "apply", "update_data", "get", "get_by_ids", "request_cancel", "force_finish", "cleanup", "schema.lock", "schema.state", "schema.record_version",
            "schema.v1.create_table", "schema.v1.create_schema_table", "schema.v2.create_workers_table", "schema.v3.add_timeout_ms", "schema.v3.add_processor_type",
            "schema.force.drop_table", "schema.force.drop_workers_table", "schema.force.forget_version", "initialize.compatibility_level",
            "worker.tables", "worker.register", "worker.beat", "worker.remove", "worker.list", "worker.request_stop", "worker.cleanup",
            "restart", "restart.delay", "remove" })
            Assert.Contains(name, names);
        Assert.Equal(32 + Enum.GetValues<TaskState>().Length + Storage.StoreStatements.FilterQueries().Count(), names.Count(n => n.StartsWith("list(", StringComparison.Ordinal)));
    }

    [Theory]
    [MemberData(nameof(StatementNames))]
    public void Parses_with_zero_errors_for_SQL_Server_2016_and_newer(string name)
    {
        var sql = Statement(name).Sql;
        foreach (var parser in Parsers) Parse(sql, parser);
    }

    [Theory]
    [MemberData(nameof(StatementNames))]
    public void Every_variable_is_declared_or_passed_with_the_same_spelling(string name)
    {
        var (_, sql, parameters) = Statement(name);
        var fragment = Parse(sql);
        // Named arguments of EXEC (sp_getapplock's @Resource, ...) are procedure parameters, not variables.
        var procedureParameters = Find<ExecuteParameter>(fragment).Select(p => p.Variable).Where(v => v is not null).ToHashSet();
        var used = Find<VariableReference>(fragment).Where(v => !procedureParameters.Contains(v)).Select(v => v.Name).ToHashSet(StringComparer.Ordinal);
        var declared = Find<DeclareVariableElement>(fragment).Select(d => d.VariableName.Value)
            .Concat(Find<DeclareTableVariableBody>(fragment).Select(d => d.VariableName.Value)).ToList();
        var passed = (parameters?.GetType().GetProperties() ?? []).ToDictionary(p => "@" + p.Name, p => p.GetValue(parameters), StringComparer.Ordinal);

        // Exact spelling: on a server with a case-sensitive collation, @Now and @now are different variables.
        Assert.Empty(used.Except(declared, StringComparer.Ordinal).Except(passed.Keys, StringComparer.Ordinal));
        // A parameter with the name of a declared variable would be declared twice (error 134).
        Assert.Empty(declared.Intersect(passed.Keys, StringComparer.OrdinalIgnoreCase));
        Assert.Equal(declared.Count, declared.Distinct(StringComparer.OrdinalIgnoreCase).Count());
        Assert.Empty(passed.Where(p => p.Value is not null).Select(p => p.Key).Except(used, StringComparer.Ordinal));
    }

    // Functions this store may call; each exists in SQL Server 2016 (GREATEST, LEAST, BASE64 functions do not).
    private static readonly HashSet<string> Sql2016Functions = new(StringComparer.OrdinalIgnoreCase)
    {
        "DATEDIFF_BIG", "SYSUTCDATETIME", "COUNT", "MIN", "ROW_NUMBER", "HASHBYTES", "RTRIM", "OBJECT_ID", "QUOTENAME", "COL_LENGTH", "DB_ID",
    };

    [Theory]
    [MemberData(nameof(StatementNames))]
    public void Calls_only_functions_that_exist_in_SQL_Server_2016(string name)
    {
        var fragment = Parse(Statement(name).Sql);
        Assert.All(Find<FunctionCall>(fragment), f => Assert.Contains(f.FunctionName.Value, Sql2016Functions));
    }

    public static TheoryData<string> JsonStatementNames() => new(All.Where(s => s.Sql.Contains("OPENJSON", StringComparison.Ordinal)).Select(s => s.Name));

    [Theory]
    [MemberData(nameof(JsonStatementNames))]
    public void Every_OPENJSON_column_reads_a_property_the_store_writes_in_a_form_SQL_Server_converts(string name)
    {
        var (_, sql, parameters) = Statement(name);
        var fragment = Parse(sql);
        var documents = Find<OpenJsonTableReference>(fragment);
        Assert.NotEmpty(documents);
        foreach (var document in documents)
        {
            var elements = Elements(document, documents, parameters);
            Assert.NotEmpty(elements);
            foreach (var item in document.SchemaDeclarationItems)
            {
                var path = ((StringLiteral)item.Mapping).Value;
                var type = ((SqlDataTypeReference)item.ColumnDefinition.DataType).SqlDataTypeOption;
                foreach (var element in elements)
                {
                    JsonElement value;
                    if (path == "$") value = element;
                    else
                    {
                        Assert.StartsWith("$.", path);
                        Assert.True(element.TryGetProperty(path[2..], out value), $"{name}: OPENJSON reads '{path}' but the store writes {element}");
                    }
                    if (value.ValueKind == JsonValueKind.Null) continue;
                    // Numbers travel as strings so that 64-bit values convert exactly from their text.
                    switch (type)
                    {
                        case SqlDataTypeOption.BigInt:
                            Assert.True(value.ValueKind == JsonValueKind.String && long.TryParse(value.GetString(), out _), $"{name}: {path} = {value}");
                            break;
                        case SqlDataTypeOption.Int:
                            Assert.True(value.ValueKind == JsonValueKind.String && int.TryParse(value.GetString(), out _), $"{name}: {path} = {value}");
                            break;
                        case SqlDataTypeOption.VarChar: // hex data for CONVERT(varbinary(max), ..., 1)
                            Assert.Matches("^0x([0-9A-F]{2})*$", value.GetString());
                            break;
                        case SqlDataTypeOption.NVarChar:
                            Assert.Equal(JsonValueKind.String, value.ValueKind);
                            break;
                        default:
                            Assert.Fail($"{name}: no check for OPENJSON type {type}");
                            break;
                    }
                }
            }
        }
    }

    // The JSON elements one OPENJSON iterates: the array in a parameter, or (OPENJSON(j.[value])) the
    // elements of the OPENJSON aliased j.
    private static List<JsonElement> Elements(OpenJsonTableReference document, List<OpenJsonTableReference> all, object? parameters)
    {
        switch (document.Variable)
        {
            case VariableReference v:
                var json = (string?)parameters!.GetType().GetProperty(v.Name[1..])!.GetValue(parameters);
                Assert.NotNull(json);
                return JsonDocument.Parse(json).RootElement.EnumerateArray().ToList();
            case ColumnReferenceExpression c:
                var identifiers = c.MultiPartIdentifier.Identifiers;
                Assert.Equal("value", identifiers[^1].Value);
                var outer = all.Single(d => d.Alias?.Value == identifiers[0].Value);
                return Elements(outer, all, parameters);
            default:
                throw new InvalidOperationException($"OPENJSON over {document.Variable.GetType().Name}");
        }
    }

    // ---- the shape of the statements that matter most ----

    private static List<NamedTableReference> Hinted(TSqlFragment fragment, params TableHintKind[] kinds) =>
        Find<NamedTableReference>(fragment).Where(t => kinds.All(k => t.TableHints.Any(h => h.HintKind == k))).ToList();

    [Fact]
    public void Acquire_locks_candidates_with_rowlock_readpast_updlock_and_leases_with_update_output()
    {
        var sql = Statement("acquire").Sql;
        var fragment = Parse(sql);
        var locked = Assert.Single(Hinted(fragment, TableHintKind.Rowlock, TableHintKind.ReadPast, TableHintKind.UpdLock, TableHintKind.ReadCommittedLock));
        // A seek of the clustered key only: a scan under UPDLOCK would hold locks on rows it does not take.
        Assert.Contains(locked.TableHints, h => h.HintKind == TableHintKind.ForceSeek);
        var index = Assert.IsType<IndexTableHint>(Assert.Single(locked.TableHints, h => h.HintKind == TableHintKind.Index));
        Assert.Equal($"{Table}_pk", Assert.Single(index.IndexValues).Identifier.Value);
        var update = Assert.Single(Find<UpdateSpecification>(fragment), u => u.OutputIntoClause is not null && u.Target is NamedTableReference { SchemaObject.BaseIdentifier.Value: "t" });
        Assert.Contains(update.SetClauses.OfType<AssignmentSetClause>(), s => s.Column.MultiPartIdentifier.Identifiers[^1].Value == "lease_token");
        Assert.Contains("READPAST", sql);
        Assert.Contains("UPDLOCK", sql);
        Assert.Contains("OUTPUT", sql);
        Assert.Contains("ORDER BY c.due_at, c.id", sql);
        Assert.Contains("ROW_NUMBER() OVER (PARTITION BY cu ORDER BY cdue, cid)", sql);
        Assert.Contains("CAST(cmax AS float) / (crun + k)", sql);
        Assert.Contains("k <= cmax - crun", sql);
        Assert.Contains("lease_token = @token + ch.ord", sql);
        Assert.True(sql.IndexOf("BEGIN TRANSACTION", StringComparison.Ordinal) < sql.IndexOf("sp_getapplock", StringComparison.Ordinal));
        Assert.True(sql.IndexOf("COMMIT TRANSACTION", StringComparison.Ordinal) < sql.LastIndexOf("SELECT", StringComparison.Ordinal), "rows are returned after the commit");
    }

    [Fact]
    public void Acquire_try_locks_each_user_for_the_transaction_without_waiting()
    {
        var fragment = Parse(Statement("acquire").Sql);
        var call = Assert.Single(Find<ExecuteSpecification>(fragment));
        AssertApplock(call, "Exclusive", "Transaction", "0");
        Assert.NotNull(call.Variable); // the return code decides whether the user was locked
    }

    [Fact]
    public void Schema_changes_are_serialized_by_an_exclusive_transaction_applock()
    {
        var call = Assert.Single(Find<ExecuteSpecification>(Parse(Statement("schema.lock").Sql)));
        AssertApplock(call, "Exclusive", "Transaction", (Storage.SchemaUpgrade.LockTimeoutSeconds * 1000).ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    private static void AssertApplock(ExecuteSpecification call, string mode, string owner, string timeout)
    {
        var procedure = (ExecutableProcedureReference)call.ExecutableEntity;
        Assert.Equal("sp_getapplock", procedure.ProcedureReference.ProcedureReference.Name.BaseIdentifier.Value);
        var arguments = procedure.Parameters.ToDictionary(p => p.Variable!.Name, p => p.ParameterValue, StringComparer.Ordinal);
        Assert.Equal(["@LockMode", "@LockOwner", "@LockTimeout", "@Resource"], arguments.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(mode, ((StringLiteral)arguments["@LockMode"]).Value);
        Assert.Equal(owner, ((StringLiteral)arguments["@LockOwner"]).Value);
        Assert.Equal(timeout, ((IntegerLiteral)arguments["@LockTimeout"]).Value);
    }

    [Fact]
    public void Cleanup_deletes_in_top_batches_skipping_locked_rows()
    {
        var fragment = Parse(Statement("cleanup").Sql);
        var delete = Assert.Single(Find<DeleteSpecification>(fragment));
        Assert.Equal("@limit", Assert.IsType<VariableReference>(((ParenthesisExpression)delete.TopRowFilter.Expression).Expression).Name);
        var target = Assert.IsType<NamedTableReference>(delete.Target);
        Assert.Contains(target.TableHints, h => h.HintKind == TableHintKind.ReadPast);
        Assert.Contains(target.TableHints, h => h.HintKind == TableHintKind.ReadCommittedLock);
        Assert.Contains("finished_at IS NOT NULL AND purge_at <= @now", Statement("cleanup").Sql);
    }

    [Theory]
    [InlineData("heartbeat")]
    [InlineData("apply")]
    public void Fenced_writes_check_id_token_and_liveness(string name)
    {
        var sql = Statement(name).Sql;
        var updates = Find<UpdateSpecification>(Parse(sql));
        Assert.NotEmpty(updates);
        Assert.All(updates, u => Assert.Contains("t.lease_token = w.wtok AND t.finished_at IS NULL", sql.Substring(u.StartOffset, u.FragmentLength)));
        Assert.All(updates, u => Assert.Contains("ON t.id = w.wid", sql.Substring(u.StartOffset, u.FragmentLength)));
    }

    [Fact]
    public void Apply_keeps_the_retry_message_and_never_takes_attempts_below_zero()
    {
        var sql = Statement("apply").Sql;
        Assert.Contains("message = COALESCE(w.m, t.message)", sql);
        Assert.Contains("attempts = CASE WHEN t.attempts > 0 THEN t.attempts - 1 ELSE 0 END", sql);
        Assert.Contains("BEGIN TRANSACTION", sql);
    }

    [Fact]
    public void Submit_frees_expired_keys_skips_taken_ones_and_keeps_batch_order()
    {
        var sql = Statement("submit").Sql;
        var fragment = Parse(sql);
        Assert.Empty(Find<MergeStatement>(fragment));
        var delete = Assert.Single(Find<DeleteSpecification>(fragment));
        Assert.Contains("finished_at IS NOT NULL AND purge_at <= @now", sql.Substring(delete.StartOffset, delete.FragmentLength));
        Assert.Contains("WHERE NOT EXISTS", sql);
        Assert.Contains("ORDER BY CAST(j.[key] AS int)", sql);
        Assert.Contains("OUTPUT inserted.task_key", sql);
    }

    [Fact]
    public void The_schema_has_a_monotonic_clustered_key_a_unique_key_index_and_the_filtered_indexes()
    {
        var table = Assert.Single(Find<CreateTableStatement>(Parse(Statement("schema.v1.create_table").Sql)));
        var columns = table.Definition.ColumnDefinitions.ToDictionary(c => c.ColumnIdentifier.Value);
        Assert.Equal(["id", "task_key", "task_type", "user_name", "data", "max_running", "created_at", "due_at", "lease_token", "attempts",
            "cancel_requested", "finished_at", "outcome", "message", "purge_at"], columns.Keys);
        // Version 3 adds the execution limit, guarded so that running the step again changes nothing.
        var added = Assert.Single(Find<AlterTableAddTableElementStatement>(Parse(Statement("schema.v3.add_timeout_ms").Sql)));
        Assert.Equal(Table, added.SchemaObjectName.BaseIdentifier.Value);
        var timeout = Assert.Single(added.Definition.ColumnDefinitions);
        Assert.Equal("timeout_ms", timeout.ColumnIdentifier.Value);
        Assert.Equal(SqlDataTypeOption.BigInt, ((SqlDataTypeReference)timeout.DataType).SqlDataTypeOption);
        Assert.Contains("IF COL_LENGTH(N'[tasks_test]', N'timeout_ms') IS NULL", Statement("schema.v3.add_timeout_ms").Sql);
        Assert.NotNull(columns["id"].IdentityOptions);
        Assert.Equal(SqlDataTypeOption.BigInt, ((SqlDataTypeReference)columns["id"].DataType).SqlDataTypeOption);
        Assert.Equal(SqlDataTypeOption.SmallInt, ((SqlDataTypeReference)columns["cancel_requested"].DataType).SqlDataTypeOption);
        Assert.Equal(SqlDataTypeOption.VarBinary, ((SqlDataTypeReference)columns["data"].DataType).SqlDataTypeOption);
        var pk = Assert.Single(table.Definition.TableConstraints.OfType<UniqueConstraintDefinition>());
        Assert.True(pk.IsPrimaryKey);
        Assert.True(pk.Clustered);

        var key = Assert.Single(Find<CreateIndexStatement>(Parse(Statement("schema.v1.index_key").Sql)));
        Assert.True(key.Unique);
        Assert.False(key.Clustered ?? false);
        var filters = new Dictionary<string, string>
        {
            ["schema.v1.index_due"] = "WHERE finished_at IS NULL",
            ["schema.v1.index_leased"] = "WHERE finished_at IS NULL AND lease_token IS NOT NULL",
            ["schema.v1.index_purge"] = "WHERE finished_at IS NOT NULL",
        };
        foreach (var (name, filter) in filters)
        {
            var index = Assert.Single(Find<CreateIndexStatement>(Parse(Statement(name).Sql)));
            Assert.NotNull(index.FilterPredicate);
            Assert.EndsWith(filter, Statement(name).Sql.TrimEnd(';', ' ', '\n'));
        }
    }

    [Fact]
    public void Table_names_are_always_bracketed()
    {
        foreach (var (name, sql, _) in All)
            foreach (var table in Find<NamedTableReference>(Parse(sql)).Where(t => t.SchemaObject.BaseIdentifier.Value is Table or Table + "_workers"))
                Assert.True(table.SchemaObject.BaseIdentifier.QuoteType == QuoteType.SquareBracket, name);
    }

    [Fact]
    public void The_sessions_table_has_a_clustered_text_key_and_the_session_columns()
    {
        var table = Assert.Single(Find<CreateTableStatement>(Parse(Statement("schema.v2.create_workers_table").Sql)));
        Assert.Equal($"{Table}_workers", table.SchemaObjectName.BaseIdentifier.Value);
        var columns = table.Definition.ColumnDefinitions.ToDictionary(c => c.ColumnIdentifier.Value);
        Assert.Equal(["id", "host", "pid", "processors", "running", "started_at", "last_beat_at", "alive_until", "stop_requested"], columns.Keys);
        var added = Assert.Single(Find<AlterTableAddTableElementStatement>(Parse(Statement("schema.v3.add_processor_type").Sql)));
        Assert.Equal($"{Table}_workers", added.SchemaObjectName.BaseIdentifier.Value);
        Assert.Equal("processor_type", Assert.Single(added.Definition.ColumnDefinitions).ColumnIdentifier.Value);
        Assert.Equal(SqlDataTypeOption.NVarChar, ((SqlDataTypeReference)columns["id"].DataType).SqlDataTypeOption);
        Assert.Equal("Latin1_General_100_BIN2", columns["id"].Collation.Value);
        Assert.All(new[] { "started_at", "last_beat_at", "alive_until" }, c => Assert.Equal(SqlDataTypeOption.BigInt, ((SqlDataTypeReference)columns[c].DataType).SqlDataTypeOption));
        var pk = Assert.Single(table.Definition.TableConstraints.OfType<UniqueConstraintDefinition>());
        Assert.True(pk.IsPrimaryKey);
        Assert.True(pk.Clustered);
        Assert.Contains("IF OBJECT_ID(N'[tasks_test_workers]', N'U') IS NULL", Statement("schema.v2.create_workers_table").Sql);
    }

    [Fact]
    public void A_beat_updates_its_row_or_inserts_it_again_in_one_serializable_transaction_and_returns_the_stop_flag()
    {
        var sql = Statement("worker.beat").Sql;
        var fragment = Parse(sql);
        var update = Assert.Single(Find<UpdateSpecification>(fragment));
        var target = Assert.IsType<NamedTableReference>(update.Target);
        Assert.Contains(target.TableHints, h => h.HintKind == TableHintKind.UpdLock);
        Assert.Contains(target.TableHints, h => h.HintKind == TableHintKind.Serializable);
        Assert.Contains(update.SetClauses.OfType<AssignmentSetClause>(), c => c.Variable?.Name == "@stop");
        Assert.Single(Find<InsertSpecification>(fragment));
        Assert.Contains("IF @@ROWCOUNT = 0", sql);
        Assert.Contains("COALESCE(@started, @now)", sql);
        Assert.True(sql.IndexOf("COMMIT TRANSACTION", StringComparison.Ordinal) < sql.LastIndexOf("SELECT @stop", StringComparison.Ordinal));
    }

    [Fact]
    public void Registration_inserts_only_an_id_nobody_holds_and_cleanup_deletes_only_sessions_dead_long_enough()
    {
        var register = Statement("worker.register").Sql;
        Assert.Contains("WHERE NOT EXISTS (SELECT 1 FROM [tasks_test_workers] WITH (UPDLOCK, SERIALIZABLE) WHERE id = @id)", register);
        Assert.Contains("SELECT CASE WHEN @@ROWCOUNT = 1 THEN @now ELSE NULL END", register);
        Assert.Contains("DELETE FROM [tasks_test_workers] WHERE alive_until <= @now - @deadFor", Statement("worker.cleanup").Sql);
        Assert.Contains("SET stop_requested = 1", Statement("worker.request_stop").Sql);
    }
}
