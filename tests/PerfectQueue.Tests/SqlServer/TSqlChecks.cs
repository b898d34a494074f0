using Microsoft.SqlServer.TransactSql.ScriptDom;

namespace PerfectQueue.Tests.SqlServer;

/// <summary>The columns (name and declared type) of every table the store creates, by table name.</summary>
internal sealed class TSqlSchema
{
    public Dictionary<string, Dictionary<string, DataTypeReference?>> Tables { get; } = new(StringComparer.Ordinal);

    /// <summary>The nonclustered indexes: table, index name, the columns in its key, INCLUDE list and filter.</summary>
    public List<(string Table, string Index, HashSet<string> Columns)> Indexes { get; } = [];

    // The catalog views the store reads, with the columns it reads (names as SQL Server spells them).
    public static readonly Dictionary<string, string[]> Catalog = new(StringComparer.OrdinalIgnoreCase)
    {
        ["sys.indexes"] = ["object_id", "name", "index_id", "type"],
        ["sys.databases"] = ["database_id", "name", "compatibility_level"],
    };

    /// <summary>The schema as the store's own CREATE TABLE, ALTER TABLE ADD and CREATE INDEX statements make it.</summary>
    public static TSqlSchema From(IEnumerable<string> ddl)
    {
        var schema = new TSqlSchema();
        foreach (var sql in ddl)
        {
            var fragment = TSqlTree.Parse(sql);
            foreach (var create in TSqlTree.Find<CreateTableStatement>(fragment))
                schema.Tables[create.SchemaObjectName.BaseIdentifier.Value] = create.Definition.ColumnDefinitions
                    .ToDictionary(c => c.ColumnIdentifier.Value, c => (DataTypeReference?)c.DataType, StringComparer.Ordinal);
            foreach (var alter in TSqlTree.Find<AlterTableAddTableElementStatement>(fragment))
                foreach (var column in alter.Definition.ColumnDefinitions)
                    schema.Tables[alter.SchemaObjectName.BaseIdentifier.Value][column.ColumnIdentifier.Value] = column.DataType;
            foreach (var index in TSqlTree.Find<CreateIndexStatement>(fragment))
            {
                var columns = index.Columns.Select(c => c.Column.MultiPartIdentifier.Identifiers[^1].Value)
                    .Concat(index.IncludeColumns.Select(c => c.MultiPartIdentifier.Identifiers[^1].Value))
                    .Concat(index.FilterPredicate is null ? [] : TSqlTree.Find<ColumnReferenceExpression>(index.FilterPredicate).Select(c => c.MultiPartIdentifier.Identifiers[^1].Value));
                schema.Indexes.Add((index.OnName.BaseIdentifier.Value, index.Name.Value, columns.ToHashSet(StringComparer.Ordinal)));
            }
        }
        return schema;
    }
}

/// <summary>
/// Semantic checks of T-SQL statements, without a server, over ScriptDom's tree. Each returns its problems
/// as messages that name the statement, so a test of a broken copy can assert what was found.
/// </summary>
internal static class TSqlChecks
{
    /// <summary>SQL Server tries to escalate to a table lock when one statement holds this many locks on one index.</summary>
    public const int LockEscalationThreshold = 5000;

    private sealed record Source(string Alias, Dictionary<string, DataTypeReference?> Columns, string What);

    private sealed class Scope(TSqlFragment node)
    {
        public TSqlFragment Node { get; } = node;
        public List<Source> Sources { get; } = [];
        public HashSet<string> SelectAliases { get; } = new(StringComparer.Ordinal);
        public bool Contains(TSqlFragment f) => f.StartOffset >= Node.StartOffset && f.StartOffset < Node.StartOffset + Node.FragmentLength;
    }

    private sealed class Model
    {
        public required string Name;
        public required TSqlFragment Tree;
        public List<Scope> Scopes = []; // innermost last after sorting by length descending
        public List<string> Problems = [];
        public Dictionary<string, Dictionary<string, DataTypeReference?>> TableVariables = new(StringComparer.OrdinalIgnoreCase);
        public Dictionary<string, Dictionary<string, DataTypeReference?>> Ctes = new(StringComparer.OrdinalIgnoreCase);
    }

    // ---- 1. columns ----

    /// <summary>Every column named resolves against the source it refers to: a table the store creates, a table variable, a CTE, a derived table or an OPENJSON WITH list.</summary>
    public static List<string> UnresolvedColumns(string name, string sql, TSqlSchema schema)
    {
        var model = Build(name, sql, schema);
        foreach (var column in TSqlTree.Find<ColumnReferenceExpression>(model.Tree))
        {
            if (column.ColumnType != ColumnType.Regular || column.MultiPartIdentifier is null) continue;
            if (Resolve(model, column, out var problem) is null && problem is not null) model.Problems.Add(problem);
        }
        return model.Problems;
    }

    private static Model Build(string name, string sql, TSqlSchema schema)
    {
        var model = new Model { Name = name, Tree = TSqlTree.Parse(sql) };
        foreach (var declared in TSqlTree.Find<DeclareTableVariableBody>(model.Tree))
            model.TableVariables[declared.VariableName.Value] = declared.Definition.ColumnDefinitions
                .ToDictionary(c => c.ColumnIdentifier.Value, c => (DataTypeReference?)c.DataType, StringComparer.Ordinal);
        foreach (var cte in TSqlTree.Find<CommonTableExpression>(model.Tree))
            model.Ctes[cte.ExpressionName.Value] = OutputColumns(cte.QueryExpression, cte.Columns);

        foreach (var node in TSqlTree.Find<TSqlFragment>(model.Tree))
            if (node is QuerySpecification or UpdateSpecification or DeleteSpecification or InsertSpecification or TSqlStatement)
                model.Scopes.Add(new Scope(node));
        model.Scopes.Sort((a, b) => b.Node.FragmentLength.CompareTo(a.Node.FragmentLength));

        var references = TSqlTree.Find<TableReference>(model.Tree).Where(r => r is NamedTableReference or VariableTableReference or OpenJsonTableReference or QueryDerivedTable).ToList();
        var targets = new HashSet<TSqlFragment>();
        foreach (var spec in TSqlTree.Find<DataModificationSpecification>(model.Tree)) targets.Add(spec.Target);
        foreach (var reference in references)
        {
            var scope = Innermost(model, reference);
            if (scope is null) continue;
            // UPDATE t ... FROM ... AS t: the target names an alias of the FROM clause, not a table.
            if (targets.Contains(reference) && reference is NamedTableReference { SchemaObject.SchemaIdentifier: null } target
                && references.Any(r => r != reference && r.StartOffset > reference.StartOffset && Alias(r) == target.SchemaObject.BaseIdentifier.Value && Innermost(model, r) == scope))
                continue;
            var source = SourceOf(model, reference, schema);
            if (source is not null) scope.Sources.Add(source);
        }
        // INSERT INTO x (columns): the column list names columns of the target.
        foreach (var insert in TSqlTree.Find<InsertSpecification>(model.Tree))
        {
            var scope = model.Scopes.Single(s => s.Node == insert);
            if (SourceOf(model, insert.Target, schema) is { } target) scope.Sources.Add(target);
            // The inner SELECT sees the target only through OUTPUT: its own scope is the query.
        }
        // DDL: an index names columns of the table it is on, a table's constraints name its own columns.
        foreach (var index in TSqlTree.Find<CreateIndexStatement>(model.Tree))
        {
            var table = index.OnName.BaseIdentifier.Value;
            if (schema.Tables.TryGetValue(table, out var columns)) model.Scopes.Single(s => s.Node == index).Sources.Add(new Source(table, columns, table));
            else model.Problems.Add($"{name}: index on table '{table}', which is not one the store creates");
        }
        foreach (var create in TSqlTree.Find<CreateTableStatement>(model.Tree))
            model.Scopes.Single(s => s.Node == create).Sources.Add(new Source(create.SchemaObjectName.BaseIdentifier.Value,
                create.Definition.ColumnDefinitions.ToDictionary(c => c.ColumnIdentifier.Value, c => (DataTypeReference?)c.DataType, StringComparer.Ordinal),
                create.SchemaObjectName.BaseIdentifier.Value));
        foreach (var query in TSqlTree.Find<QuerySpecification>(model.Tree))
        {
            var scope = model.Scopes.Single(s => s.Node == query);
            foreach (var element in query.SelectElements.OfType<SelectScalarExpression>())
                if (element.ColumnName is not null) scope.SelectAliases.Add(element.ColumnName.Value);
        }
        return model;
    }

    private static string? Alias(TableReference r) => r switch
    {
        TableReferenceWithAlias { Alias: not null } a => a.Alias.Value,
        NamedTableReference n => n.SchemaObject.BaseIdentifier.Value,
        VariableTableReference v => v.Variable.Name,
        _ => null,
    };

    private static Scope? Innermost(Model model, TSqlFragment f)
    {
        Scope? found = null;
        foreach (var scope in model.Scopes) if (scope.Contains(f)) found = scope; // sorted outermost first
        return found;
    }

    private static Source? SourceOf(Model model, TableReference reference, TSqlSchema schema)
    {
        switch (reference)
        {
            case NamedTableReference named:
                var table = named.SchemaObject.BaseIdentifier.Value;
                var alias = named.Alias?.Value ?? table;
                if (named.SchemaObject.SchemaIdentifier is { } s && TSqlSchema.Catalog.TryGetValue(s.Value + "." + table, out var catalog))
                    return new Source(alias, catalog.ToDictionary(c => c, _ => (DataTypeReference?)null, StringComparer.Ordinal), s.Value + "." + table);
                if (schema.Tables.TryGetValue(table, out var columns)) return new Source(alias, columns, table);
                if (model.Ctes.TryGetValue(table, out var cte)) return new Source(alias, cte, "CTE " + table);
                model.Problems.Add($"{model.Name}: table '{table}' is not one the store creates");
                return null;
            case VariableTableReference variable:
                if (model.TableVariables.TryGetValue(variable.Variable.Name, out var declared))
                    return new Source(variable.Alias?.Value ?? variable.Variable.Name, declared, variable.Variable.Name);
                model.Problems.Add($"{model.Name}: table variable {variable.Variable.Name} is not declared");
                return null;
            case OpenJsonTableReference json:
                var items = json.SchemaDeclarationItems.Count > 0
                    ? json.SchemaDeclarationItems.ToDictionary(i => i.ColumnDefinition.ColumnIdentifier.Value, i => (DataTypeReference?)i.ColumnDefinition.DataType, StringComparer.Ordinal)
                    : new Dictionary<string, DataTypeReference?>(StringComparer.Ordinal) { ["key"] = null, ["value"] = null, ["type"] = null }; // OPENJSON's default schema
                return new Source(json.Alias?.Value ?? "", items, "OPENJSON");
            case QueryDerivedTable derived:
                return new Source(derived.Alias?.Value ?? "", OutputColumns(derived.QueryExpression, derived.Columns), "derived table " + derived.Alias?.Value);
            default:
                return null;
        }
    }

    // The columns a query yields: its column list, or the names of the first SELECT's elements.
    private static Dictionary<string, DataTypeReference?> OutputColumns(QueryExpression query, IList<Identifier> columns)
    {
        if (columns.Count > 0) return columns.ToDictionary(c => c.Value, _ => (DataTypeReference?)null, StringComparer.Ordinal);
        while (query is not QuerySpecification)
            query = query switch
            {
                BinaryQueryExpression b => b.FirstQueryExpression,
                QueryParenthesisExpression p => p.QueryExpression,
                _ => throw new InvalidOperationException(query.GetType().Name),
            };
        var result = new Dictionary<string, DataTypeReference?>(StringComparer.Ordinal);
        foreach (var element in ((QuerySpecification)query).SelectElements.OfType<SelectScalarExpression>())
        {
            var name = element.ColumnName?.Value ?? (element.Expression as ColumnReferenceExpression)?.MultiPartIdentifier.Identifiers[^1].Value;
            if (name is not null) result[name] = null;
        }
        return result;
    }

    /// <summary>The column's declared type (or a source without types: null), or null with a problem when it does not resolve.</summary>
    private static Source? Resolve(Model model, ColumnReferenceExpression column, out string? problem)
    {
        problem = null;
        var parts = column.MultiPartIdentifier.Identifiers.Select(i => i.Value).ToList();
        var columnName = parts[^1];
        var qualifier = parts.Count > 1 ? parts[^2] : null;
        var scopes = model.Scopes.Where(s => s.Contains(column)).Reverse().ToList(); // innermost first
        if (qualifier is "inserted" or "deleted")
        {
            var dml = scopes.FirstOrDefault(s => s.Node is UpdateSpecification or InsertSpecification or DeleteSpecification);
            var target = dml?.Node is DataModificationSpecification d ? TargetSource(dml, d.Target) : null;
            if (target is not null && target.Columns.ContainsKey(columnName)) return target;
            problem = $"{model.Name}: {qualifier}.{columnName} is not a column of the target {target?.What ?? "(none)"}";
            return null;
        }
        foreach (var scope in scopes)
        {
            if (qualifier is not null)
            {
                var source = scope.Sources.LastOrDefault(s => s.Alias == qualifier);
                if (source is null) continue;
                if (source.Columns.ContainsKey(columnName)) return source;
                problem = $"{model.Name}: column {qualifier}.{columnName} is not a column of {source.What}";
                return null;
            }
            var matching = scope.Sources.FirstOrDefault(s => s.Columns.ContainsKey(columnName));
            if (matching is not null) return matching;
            if (scope.SelectAliases.Contains(columnName)) return new Source("", [], "select alias");
        }
        problem = qualifier is null
            ? $"{model.Name}: column {columnName} is not a column of any table it reads ({string.Join(", ", scopes.SelectMany(s => s.Sources).Select(s => s.What).Distinct())})"
            : $"{model.Name}: column {qualifier}.{columnName} names no table of the statement";
        return null;
    }

    // The target of a DML statement, through its alias when it names one of the FROM clause.
    private static Source? TargetSource(Scope scope, TableReference target) => target switch
    {
        NamedTableReference n => scope.Sources.FirstOrDefault(s => s.Alias == (n.Alias?.Value ?? n.SchemaObject.BaseIdentifier.Value)),
        VariableTableReference v => scope.Sources.FirstOrDefault(s => s.Alias == (v.Alias?.Value ?? v.Variable.Name)),
        _ => null,
    };

    // The table a DML statement writes, by name (a store table, or a table variable's name), or null.
    private static string? TargetTable(Model model, DataModificationSpecification dml) =>
        TargetSource(model.Scopes.Single(s => s.Node == dml), dml.Target)?.What;

    // ---- 2. parameters ----

    /// <summary>
    /// Every variable used is declared in the batch or passed by the store (exact spelling), and where a
    /// parameter meets a column, a TOP or arithmetic, the .NET type the store passes suits it.
    /// </summary>
    public static List<string> ParameterProblems(string name, string sql, object? parameters, TSqlSchema schema)
    {
        var model = Build(name, sql, schema);
        var tree = model.Tree;
        var procedureParameters = TSqlTree.Find<ExecuteParameter>(tree).Select(p => p.Variable).Where(v => v is not null).ToHashSet();
        var declared = TSqlTree.Find<DeclareVariableElement>(tree).Select(d => d.VariableName.Value)
            .Concat(TSqlTree.Find<DeclareTableVariableBody>(tree).Select(d => d.VariableName.Value)).ToHashSet(StringComparer.Ordinal);
        var passed = (parameters?.GetType().GetProperties() ?? []).ToDictionary(p => "@" + p.Name, p => Nullable.GetUnderlyingType(p.PropertyType) ?? p.PropertyType, StringComparer.Ordinal);
        var problems = new List<string>(); // unresolved columns and tables are the other check's

        foreach (var v in TSqlTree.Find<VariableReference>(tree).Where(v => !procedureParameters.Contains(v)).Select(v => v.Name).Distinct(StringComparer.Ordinal))
            if (!declared.Contains(v) && !passed.ContainsKey(v))
                problems.Add($"{name}: {v} is neither declared in the batch nor passed by the store (it passes {string.Join(", ", passed.Keys.Order(StringComparer.Ordinal))})");
        foreach (var p in passed.Keys.Where(declared.Contains))
            problems.Add($"{name}: the store passes {p}, which the batch also declares (error 134)");

        void Expect(ScalarExpression expression, string family, string where)
        {
            if (expression is ParenthesisExpression paren) expression = paren.Expression;
            if (expression is not VariableReference v || !passed.TryGetValue(v.Name, out var clr)) return;
            var actual = Family(clr);
            if (actual != family) problems.Add($"{name}: {v.Name} is passed as {clr.Name} ({actual}) but {where} needs {family}");
        }
        void AgainstColumn(ScalarExpression value, ColumnReferenceExpression column)
        {
            if (column.MultiPartIdentifier is null) return;
            var source = Resolve(model, column, out _);
            var columnName = column.MultiPartIdentifier.Identifiers[^1].Value;
            if (source?.Columns.GetValueOrDefault(columnName) is SqlDataTypeReference type)
                Expect(value, Family(type.SqlDataTypeOption), $"column {columnName} ({type.SqlDataTypeOption})");
        }

        foreach (var c in TSqlTree.Find<BooleanComparisonExpression>(tree))
        {
            if (c.FirstExpression is ColumnReferenceExpression l) AgainstColumn(c.SecondExpression, l);
            if (c.SecondExpression is ColumnReferenceExpression r) AgainstColumn(c.FirstExpression, r);
        }
        foreach (var set in TSqlTree.Find<AssignmentSetClause>(tree))
            if (set.Column is not null && set.NewValue is not null) AgainstColumn(set.NewValue, set.Column);
        foreach (var insert in TSqlTree.Find<InsertSpecification>(tree))
        {
            var values = insert.InsertSource switch
            {
                ValuesInsertSource v => v.RowValues.SelectMany(r => r.ColumnValues.Select((e, i) => (e, i))).ToList(),
                SelectInsertSource { Select: QuerySpecification q } => q.SelectElements.OfType<SelectScalarExpression>().Select((e, i) => (e.Expression, i)).ToList(),
                _ => [],
            };
            foreach (var (value, i) in values)
                if (i < insert.Columns.Count) AgainstColumn(value, insert.Columns[i]);
        }
        foreach (var top in TSqlTree.Find<TopRowFilter>(tree)) Expect(top.Expression, "integer", "TOP");
        foreach (var b in TSqlTree.Find<BinaryExpression>(tree))
        {
            Expect(b.FirstExpression, "integer", "arithmetic on times");
            Expect(b.SecondExpression, "integer", "arithmetic on times");
        }
        foreach (var json in TSqlTree.Find<OpenJsonTableReference>(tree)) Expect(json.Variable, "text", "OPENJSON");
        return problems;
    }

    private static string Family(Type clr) =>
        clr == typeof(string) ? "text"
        : clr == typeof(byte[]) ? "binary"
        : clr == typeof(long) || clr == typeof(int) || clr == typeof(short) || clr == typeof(byte) || clr == typeof(bool) ? "integer"
        : clr == typeof(double) || clr == typeof(float) || clr == typeof(decimal) ? "number"
        : clr.Name;

    private static string Family(SqlDataTypeOption type) => type switch
    {
        SqlDataTypeOption.NVarChar or SqlDataTypeOption.VarChar or SqlDataTypeOption.NChar or SqlDataTypeOption.Char => "text",
        SqlDataTypeOption.VarBinary or SqlDataTypeOption.Binary => "binary",
        SqlDataTypeOption.BigInt or SqlDataTypeOption.Int or SqlDataTypeOption.SmallInt or SqlDataTypeOption.TinyInt or SqlDataTypeOption.Bit => "integer",
        SqlDataTypeOption.Float or SqlDataTypeOption.Real or SqlDataTypeOption.Decimal or SqlDataTypeOption.Numeric => "number",
        _ => type.ToString(),
    };

    // ---- 3. READPAST ----

    /// <summary>READPAST is only allowed with a locking read under READ_COMMITTED_SNAPSHOT: READCOMMITTEDLOCK must stand beside it.</summary>
    public static List<string> ReadPastWithoutReadCommittedLock(string name, string sql) =>
        TSqlTree.Find<NamedTableReference>(TSqlTree.Parse(sql))
            .Where(t => t.TableHints.Any(h => h.HintKind == TableHintKind.ReadPast) && t.TableHints.All(h => h.HintKind != TableHintKind.ReadCommittedLock))
            .Select(t => $"{name}: READPAST on {t.SchemaObject.BaseIdentifier.Value}{(t.Alias is null ? "" : " AS " + t.Alias.Value)} without READCOMMITTEDLOCK (error 650 under READ_COMMITTED_SNAPSHOT)")
            .ToList();

    // ---- 4. OUTPUT without INTO ----

    /// <summary>OUTPUT straight to the client fails with error 334 once the table has an enabled trigger: on the store's tables it must go INTO a table variable.</summary>
    public static List<string> OutputWithoutInto(string name, string sql, TSqlSchema schema)
    {
        var model = Build(name, sql, schema);
        var problems = new List<string>();
        foreach (var dml in TSqlTree.Find<DataModificationSpecification>(model.Tree).Where(d => d.OutputClause is not null))
        {
            var table = TargetTable(model, dml);
            if (table is not null && schema.Tables.ContainsKey(table))
                problems.Add($"{name}: OUTPUT without INTO on table {table} (fails with error 334 when the table has a trigger): OUTPUT ... INTO a table variable and select from it");
        }
        return problems;
    }

    // ---- 5. lock escalation ----

    /// <summary>
    /// The most key locks one statement that updates <paramref name="rows"/> rows takes on one index of the
    /// table: one per row on the clustered key, two per row (the old key and the new) on each nonclustered
    /// index whose key, INCLUDE list or filter names a column the statement sets. Escalation counts per index.
    /// </summary>
    public static List<string> LockEscalationProblems(string name, string sql, TSqlSchema schema, string table, int rows)
    {
        var problems = new List<string>();
        var model = Build(name, sql, schema);
        foreach (var update in TSqlTree.Find<UpdateSpecification>(model.Tree).Where(u => TargetTable(model, u) == table))
        {
            var set = update.SetClauses.OfType<AssignmentSetClause>().Where(s => s.Column is not null)
                .Select(s => s.Column.MultiPartIdentifier.Identifiers[^1].Value).ToHashSet(StringComparer.Ordinal);
            if (rows >= LockEscalationThreshold)
                problems.Add($"{name}: updating {rows} rows takes {rows} locks on the clustered key of {table}, at or above the {LockEscalationThreshold} at which SQL Server escalates to a table lock");
            foreach (var (onTable, index, columns) in schema.Indexes.Where(i => i.Table == table && i.Columns.Overlaps(set)))
                if (2 * rows >= LockEscalationThreshold)
                    problems.Add($"{name}: updating {rows} rows takes about {2 * rows} key locks on index {index} (it holds {string.Join(", ", columns.Intersect(set))}), at or above the {LockEscalationThreshold} at which SQL Server escalates to a table lock");
        }
        // A delete takes one key lock per row on every index the row is in.
        foreach (var delete in TSqlTree.Find<DeleteSpecification>(model.Tree).Where(d => TargetTable(model, d) == table))
            if (rows >= LockEscalationThreshold)
                problems.Add($"{name}: deleting {rows} rows takes {rows} key locks on each index of {table}, at or above the {LockEscalationThreshold} at which SQL Server escalates to a table lock");
        return problems;
    }
}
