namespace PerfectQueue.Storage.Relational;

/// <summary>
/// One statement of a schema step. It takes no parameters (the table name is validated and embedded), and it
/// must be safe to run again: a crash may come between a step's statements on a dialect whose DDL commits by
/// itself, and Initialize-PQQueue runs every step again (docs/schema.md, "Upgrades").
/// </summary>
/// <param name="Name">A stable name: SQL Server's statement inventory lists it, and errors can name it.</param>
/// <param name="Sql">The statement, guarded by the dialect's own IF [NOT] EXISTS where it has one.</param>
/// <param name="DoneIf">
/// For a change the dialect cannot guard in the statement itself (SQLite has no ADD COLUMN IF NOT EXISTS):
/// a query that returns a count above zero when the change is already there; the statement is then skipped.
/// </param>
internal sealed record SchemaStatement(string Name, string Sql, string? DoneIf = null);

/// <summary>A schema version: what it adds (for messages) and the statements that bring the previous version to it.</summary>
internal sealed record SchemaStep(int Version, string Description, IReadOnlyList<SchemaStatement> Statements);

/// <summary>Whether the queue table exists, and the version perfectqueue_schema records for it (null: none recorded).</summary>
internal readonly record struct SchemaState(bool TableExists, int? RecordedVersion)
{
    /// <summary>The version the table is at: a missing table is at 0 whatever a stale row says, an unrecorded one too.</summary>
    public int Current => TableExists ? RecordedVersion ?? 0 : 0;
}

/// <summary>
/// What a backend gives <see cref="SchemaMigrator"/>: a session on one connection, with or without the
/// database-wide schema lock (PostgreSQL pg_advisory_xact_lock, SQL Server sp_getapplock, SQLite the write
/// lock of BEGIN IMMEDIATE, MySQL GET_LOCK), and whether an error means "this user may not change the schema".
/// </summary>
internal interface ISchemaDialect
{
    /// <summary>
    /// Runs <paramref name="work"/> on one connection. Locked: holding the schema lock (waiting at most
    /// <see cref="SchemaUpgrade.LockTimeoutSeconds"/> where the dialect lets it be bounded), inside one
    /// transaction where DDL is transactional, committed when the work returns and rolled back when it throws.
    /// </summary>
    Task<T> InSessionAsync<T>(bool locked, Func<ISchemaSession, Task<T>> work, CancellationToken ct);

    /// <summary>Whether the error says the database user may not make the change (as opposed to any other failure).</summary>
    bool IsPermissionError(Exception error);
}

/// <summary>The schema operations of one session (see <see cref="ISchemaDialect.InSessionAsync"/>).</summary>
internal interface ISchemaSession
{
    Task<SchemaState> ReadStateAsync(CancellationToken ct);

    /// <summary>Runs the statement, unless its <see cref="SchemaStatement.DoneIf"/> says it is done.</summary>
    Task RunAsync(SchemaStatement statement, CancellationToken ct);

    /// <summary>Records <paramref name="version"/> in perfectqueue_schema for this queue table (inserting its row if missing).</summary>
    Task RecordVersionAsync(int version, CancellationToken ct);
}

/// <summary>A store whose schema the runner keeps: its steps and its dialect hook (tests run the runner with other steps).</summary>
internal interface ISchemaOwner
{
    IReadOnlyList<SchemaStep> SchemaSteps();
    ISchemaDialect SchemaDialectForTests();
    /// <summary>Where the queue is, as schema errors name it.</summary>
    string SchemaWhere { get; }
}

/// <summary>
/// The one schema runner of every relational backend. A backend lists its versions as ordered steps (1, 2, 3, ...);
/// the runner reads the version the queue table records, refuses a newer one than it knows, and runs each missing
/// step in order under the schema lock, recording the step's version in the same session, so a crash between
/// steps leaves the table at a recorded version and the next command resumes from there. Adding a version is
/// appending one step per dialect (and raising <see cref="SchemaUpgrade.Version"/>).
/// </summary>
internal static class SchemaMigrator
{
    /// <summary>The newest version of <paramref name="steps"/>, after checking they run 1, 2, ... without gaps.</summary>
    public static int Latest(IReadOnlyList<SchemaStep> steps)
    {
        if (steps.Count == 0) throw new ArgumentException("A schema needs at least one step.", nameof(steps));
        for (var i = 0; i < steps.Count; i++)
            if (steps[i].Version != i + 1)
                throw new ArgumentException($"Schema steps must be versions 1, 2, ... in order; step {i + 1} is version {steps[i].Version}.", nameof(steps));
        return steps[^1].Version;
    }

    /// <summary>
    /// The upgrade before a store's first command: brings an existing queue table up to the newest step, running
    /// only the missing ones. False when there is no queue table (the command itself reports that; nothing is created).
    /// </summary>
    public static Task<bool> UpgradeAsync(ISchemaDialect dialect, IReadOnlyList<SchemaStep> steps, string table, string where, CancellationToken ct) =>
        MigrateAsync(dialect, steps, table, where, initialize: false, dropFirst: null, ct);

    /// <summary>
    /// Initialize-PQQueue: creates the schema, or completes it. Every step runs again (each is idempotent), so an
    /// object a step creates that has gone missing (an index dropped by hand, or one added to a step after tables
    /// were made with it) is made again; versions are only ever raised. <paramref name="dropFirst"/> (-Force): run
    /// first, under the lock, whatever version the table has.
    /// </summary>
    public static Task InitializeAsync(ISchemaDialect dialect, IReadOnlyList<SchemaStep> steps, string table, string where,
        IReadOnlyList<SchemaStatement>? dropFirst, CancellationToken ct) =>
        MigrateAsync(dialect, steps, table, where, initialize: true, dropFirst, ct);

    private static async Task<bool> MigrateAsync(ISchemaDialect dialect, IReadOnlyList<SchemaStep> steps, string table, string where,
        bool initialize, IReadOnlyList<SchemaStatement>? dropFirst, CancellationToken ct)
    {
        var latest = Latest(steps);
        // Looked at without the lock first: once per store, and nearly always the table is current.
        SchemaState found = default;
        if (dropFirst is null)
        {
            found = await dialect.InSessionAsync(false, s => s.ReadStateAsync(ct), ct).ConfigureAwait(false);
            Refuse(found, latest, table, where);
            if (!found.TableExists && !initialize) return false;
            if (!initialize && found.Current >= latest) return true;
        }
        try
        {
            if (dropFirst is not null)
                await dialect.InSessionAsync(true, async s =>
                {
                    foreach (var statement in dropFirst) await s.RunAsync(statement, ct).ConfigureAwait(false);
                    return true;
                }, ct).ConfigureAwait(false);
            foreach (var step in steps)
            {
                // One session per step: the step and its recorded version commit together where DDL is
                // transactional, and the state is read again under the lock, since another process may have
                // run the step meanwhile.
                var tableGone = await dialect.InSessionAsync(true, async s =>
                {
                    var state = await s.ReadStateAsync(ct).ConfigureAwait(false);
                    Refuse(state, latest, table, where);
                    if (!state.TableExists && !initialize) return true; // dropped meanwhile: nothing to upgrade
                    var current = state.Current;
                    if (current >= step.Version && !initialize) return false;
                    foreach (var statement in step.Statements) await s.RunAsync(statement, ct).ConfigureAwait(false);
                    if (step.Version > current) await s.RecordVersionAsync(step.Version, ct).ConfigureAwait(false);
                    return false;
                }, ct).ConfigureAwait(false);
                if (tableGone) return false;
            }
        }
        // Only an upgrade of an existing older table says so; a user who may not create a new queue gets the
        // database's own error, which says what is missing.
        catch (Exception e) when (found.TableExists && found.Current < latest && dialect.IsPermissionError(e))
        {
            throw SchemaUpgrade.CannotUpgrade(table, where, found.Current, steps.Where(s => s.Version > found.Current).ToList(), e);
        }
        return true;
    }

    private static void Refuse(SchemaState state, int latest, string table, string where)
    {
        if (state.RecordedVersion is { } recorded && recorded > latest) throw SchemaUpgrade.TooNew(table, where, recorded, latest);
    }
}
