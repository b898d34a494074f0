using System.Text;

namespace PerfectQueue;

/// <summary>
/// What one attempt's handler wrote (its output, error, warning, information and verbose streams), as text lines
/// tagged with their stream, kept for the task's history (docs/history.md). Bounded to <see cref="MaxBytes"/> of
/// UTF-8; past it one marker line says the rest was cut. Streams may write from any thread.
/// </summary>
internal sealed class AttemptOutput
{
    /// <summary>The most output kept per attempt.</summary>
    public const int MaxBytes = 64 * 1024;

    /// <summary>The line that ends output cut at <see cref="MaxBytes"/>.</summary>
    public const string CutMarker = "… output cut at 64 KB";

    private readonly object _gate = new();
    private StringBuilder? _text;
    private int _bytes;
    private bool _cut;

    /// <summary>Adds one line (or several, split on line breaks) under a stream tag such as "output" or "warning".</summary>
    public void Append(string stream, string? text)
    {
        if (text is null) return;
        foreach (var line in text.Replace("\r\n", "\n").Split('\n'))
            AppendLine($"[{stream}] {line}");
    }

    private void AppendLine(string line)
    {
        line = TaskText.CleanText(line); // no NUL, broken UTF-16 or terminal controls: every backend stores it, every terminal shows it
        var size = Encoding.UTF8.GetByteCount(line) + 1;
        lock (_gate)
        {
            if (_cut) return;
            if (_bytes + size > MaxBytes - CutMarker.Length * 3)
            {
                _cut = true;
                (_text ??= new()).Append(CutMarker).Append('\n');
                return;
            }
            (_text ??= new()).Append(line).Append('\n');
            _bytes += size;
        }
    }

    /// <summary>The text so far (null when nothing was written).</summary>
    public string? Text
    {
        get { lock (_gate) return _text is { Length: > 0 } t ? t.ToString(0, t.Length - 1) : null; }
    }

    /// <summary>Takes the text another process captured for this attempt (a child process's handler), replacing what is here.</summary>
    internal void Replace(string? text)
    {
        lock (_gate)
        {
            _text = null;
            _bytes = 0;
            _cut = false;
        }
        if (text is null) return;
        foreach (var line in text.Split('\n')) AppendLine(line);
    }
}
