using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace SparseOnnx.Runtime.Tokenization;

/// <summary>
/// The <c>normalizer</c> of a Hugging Face <c>tokenizer.json</c>, applied in front of the BPE model as the Rust
/// <c>tokenizers</c> library applies it: <c>NFC</c>, <c>NFD</c>, <c>NFKC</c>, <c>NFKD</c> (Unicode normalization
/// forms), <c>Lowercase</c>, <c>Strip</c> (left/right whitespace), <c>Prepend</c>, <c>Replace</c> (a string or a
/// regex pattern) and a <c>Sequence</c> of them, in order. Any other normalizer is refused by name, so a text is
/// never silently tokenized differently from the reference library.
/// </summary>
internal sealed class HuggingFaceNormalizer
{
    private readonly Func<string, string>[] _steps;

    private HuggingFaceNormalizer(Func<string, string>[] steps) => _steps = steps;

    public static readonly HuggingFaceNormalizer None = new([]);

    public bool IsIdentity => _steps.Length == 0;

    public string Apply(string text)
    {
        foreach (var step in _steps) text = step(text);
        return text;
    }

    /// <summary>Reads the normalizer (absent or null: none). Throws <see cref="TokenizerLoadException"/> naming an unsupported one.</summary>
    public static HuggingFaceNormalizer Read(JsonElement normalizer, string path)
    {
        if (normalizer.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return None;
        var steps = new List<Func<string, string>>();
        Add(normalizer, steps, path);
        return new HuggingFaceNormalizer(steps.ToArray());
    }

    /// <summary>A Unicode normalization form, after checking that this process can apply it: with invariant
    /// globalization .NET loads no ICU and leaves non-ASCII text unnormalized, which would change the ids.</summary>
    private static Func<string, string> UnicodeForm(NormalizationForm form, string type, string path)
    {
        if ("\u00c5\ufb01".Normalize(NormalizationForm.FormKD) != "A\u030afi")
            throw new TokenizerLoadException(path,
                $"its {type} normalizer needs Unicode normalization, which this process lacks: .NET runs with invariant globalization " +
                "(InvariantGlobalization in the host's project, or DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1), so ICU is not loaded; turn it off and install libicu");
        return s => s.Normalize(form);
    }

    private static void Add(JsonElement step, List<Func<string, string>> steps, string path)
    {
        string type = step.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "";
        switch (type)
        {
            case "Sequence":
                foreach (var inner in step.GetProperty("normalizers").EnumerateArray()) Add(inner, steps, path);
                break;
            case "NFC": steps.Add(UnicodeForm(NormalizationForm.FormC, type, path)); break;
            case "NFD": steps.Add(UnicodeForm(NormalizationForm.FormD, type, path)); break;
            case "NFKC": steps.Add(UnicodeForm(NormalizationForm.FormKC, type, path)); break;
            case "NFKD": steps.Add(UnicodeForm(NormalizationForm.FormKD, type, path)); break;
            // The library lowercases char by char with Unicode's full mapping; .NET's is the simple one, which differs
            // only for U+0130 (İ → "i̇", two code points).
            case "Lowercase": steps.Add(s => s.Replace("\u0130", "i\u0307", StringComparison.Ordinal).ToLowerInvariant()); break;
            case "Strip":
                bool left = !step.TryGetProperty("strip_left", out var l) || l.GetBoolean();
                bool right = !step.TryGetProperty("strip_right", out var r) || r.GetBoolean();
                steps.Add(s => left && right ? s.Trim() : left ? s.TrimStart() : right ? s.TrimEnd() : s);
                break;
            case "Prepend":
                string prefix = step.GetProperty("prepend").GetString() ?? "";
                // The library prepends only to a non-empty text.
                steps.Add(s => s.Length == 0 ? s : prefix + s);
                break;
            case "Replace":
                string content = step.GetProperty("content").GetString() ?? "";
                var pattern = step.GetProperty("pattern");
                if (pattern.TryGetProperty("String", out var literal))
                {
                    string from = literal.GetString() ?? "";
                    if (from.Length == 0) throw new TokenizerLoadException(path, "a Replace normalizer has an empty pattern");
                    steps.Add(s => s.Replace(from, content, StringComparison.Ordinal));
                }
                else if (pattern.TryGetProperty("Regex", out var regex))
                {
                    var compiled = new Regex(regex.GetString() ?? "", RegexOptions.CultureInvariant);
                    steps.Add(s => compiled.Replace(s, content.Replace("$", "$$")));
                }
                else throw new TokenizerLoadException(path, "a Replace normalizer has neither a String nor a Regex pattern");
                break;
            default:
                throw new TokenizerLoadException(path,
                    $"normalizer '{type}' is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, Prepend, Replace, Sequence); " +
                    "its ids would differ from the tokenizers library's");
        }
    }
}
