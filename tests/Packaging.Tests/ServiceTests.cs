using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.ServerSentEvents;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using SparseOnnx.Runtime.Inference;
using SparseOnnx.Runtime.Tokenization;

namespace SparseOnnx.Packaging.Tests;

/// <summary>
/// examples/service, the ASP.NET Core generation service, built from the packed folder (in place, with a package cache
/// and build output of its own) and run on a llama-brown sparsified at 50%: 32 concurrent requests on its one shared
/// model each get exactly the in-repo library's greedy continuation, the stream sends the same tokens one per event,
/// bad requests get a 400 that names the problem, and the service goes on answering.
/// </summary>
[Collection(PackagedBuilds.Name)]
public class ServiceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sparseonnx-service-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string ServiceFolder => Path.Combine(RepositoryPaths.Root, "examples", "service");

    private static string ModelFolder => SparseReference.Folder;

    // llama-brown has no config file saying its context; it was trained on 128-token sequences.
    private const int ContextLength = 128;

    private static readonly string[] Prompts =
    [
        "The jury said", "In the morning the", "He said that the", "The city of", "It was a", "She had never seen",
        "The president of the", "When the war was over,",
    ];

    [Fact]
    public async Task ConcurrentRequestsOnOneSharedModelGetTheLibrarysGreedyTokens()
    {
        PackedFolder.Package("SparseOnnx.Runtime");
        // The example builds from the packages only: the solution does not build it.
        Assert.DoesNotContain("GenerationService", File.ReadAllText(Path.Combine(RepositoryPaths.Root, "SparseOnnx.sln")));
        var examplesBefore = PackedFolder.Snapshot(Path.Combine(RepositoryPaths.Root, "examples"));

        string sparse = SparseReference.WriteHalfSparse(Path.Combine(_dir, "model", "model.onnx"));
        string tokenizerPath = Path.Combine(ModelFolder, "tokenizer.model");

        string artifacts = Path.Combine(_dir, "artifacts");
        PackedFolder.Dotnet(ServiceFolder, ["build", "-c", "Release", "--artifacts-path", artifacts, "-p:TreatWarningsAsErrors=true",
            .. PackedFolder.IsolatedRestoreProperties(_dir)], TimeSpan.FromMinutes(5));
        PackedFolder.AssertRestoredFromPackedFolder(PackedFolder.PackageCache(_dir), "SparseOnnx.Runtime", "SparseOnnx.CustomOps");
        string output = Path.Combine(artifacts, "bin", "GenerationService", "release");
        Assert.True(File.Exists(Path.Combine(output, "runtimes", "linux-x64", "native", "libsparseonnx_ops.so")), "the op library should be in the service's output");

        // 32 requests: every prompt with several lengths, 1 to 48 tokens.
        var requests = Enumerable.Range(0, 32).Select(i => (Prompt: Prompts[i % Prompts.Length], MaxTokens: 1 + i * 7 % 48)).ToArray();
        var tokenizer = TextTokenizer.Load(tokenizerPath);
        GenerationResult[] expected;
        using (var reference = CausalLm.Open(sparse))
            expected = requests.Select(r => TextGenerator.Generate(reference, tokenizer, r.Prompt, new GenerationOptions { MaxTokens = r.MaxTokens })).ToArray();

        // 8 generations at once on the one model (the default is one per core): the 32 requests both share the
        // session 8 at a time and queue at the service's gate.
        int port = FreePort();
        using var service = Start(output, ["--urls", $"http://127.0.0.1:{port}", "--model", sparse, "--tokenizer", tokenizerPath,
            "--context-length", ContextLength.ToString(System.Globalization.CultureInfo.InvariantCulture), "--Generation:MaxConcurrent=8"]);
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromMinutes(2) };
            using (var health = JsonDocument.Parse(await WaitUntilReady(client, service)))
            {
                Assert.Equal(8, health.RootElement.GetProperty("maxConcurrent").GetInt32());
                Assert.Equal(ContextLength, health.RootElement.GetProperty("contextLength").GetInt32());
            }

            // All at once on the one CausalLm: each answer is the library's own greedy continuation.
            var answers = await Task.WhenAll(requests.Select(r => Generate(client, r.Prompt, r.MaxTokens)));
            for (int i = 0; i < requests.Length; i++)
            {
                string which = $"request {i} ({requests[i].Prompt}, {requests[i].MaxTokens} tokens)";
                Assert.True(answers[i].Status == HttpStatusCode.OK, $"{which}: {answers[i].Status} {answers[i].Body}\n{service.Output}");
                using var body = JsonDocument.Parse(answers[i].Body);
                var root = body.RootElement;
                Assert.Equal(expected[i].Ids, root.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
                Assert.Equal(expected[i].Text, root.GetProperty("text").GetString());
                Assert.Equal(expected[i].StoppedAtEos, root.GetProperty("stoppedAtEos").GetBoolean());
                Assert.Equal(expected[i].PromptIds.Count, root.GetProperty("promptTokens").GetInt32());
            }

            // The stream: one token event per generated token, the same tokens and texts, then done.
            int[] streamed = [0, 5, 14, 31];
            var streams = await Task.WhenAll(streamed.Select(i => StreamTokens(client, requests[i].Prompt, requests[i].MaxTokens)));
            for (int s = 0; s < streamed.Length; s++)
            {
                var (tokens, done) = streams[s];
                var reference = expected[streamed[s]];
                Assert.Equal(reference.Ids, tokens.Select(t => t.Id).ToArray());
                Assert.Equal(reference.Text, string.Concat(tokens.Select(t => t.Text)));
                Assert.Equal(reference.Ids.Count, done.GetProperty("tokens").GetInt32());
                Assert.Equal(reference.StoppedAtEos, done.GetProperty("stoppedAtEos").GetBoolean());
            }

            // Bad requests: 400 with a problem that names what is wrong, on both endpoints.
            int promptTokens = expected[0].PromptIds.Count;
            await AssertBadRequest(client, "/generate", new { prompt = "", maxTokens = 8 }, "prompt is missing or empty");
            await AssertBadRequest(client, "/generate", new { prompt = "The jury said", maxTokens = 0 }, "maxTokens must be at least 1, not 0");
            await AssertBadRequest(client, "/generate", new { prompt = "The jury said", maxTokens = ContextLength - promptTokens + 1 },
                $"more than the {ContextLength - promptTokens} tokens the model's context of {ContextLength} leaves");
            await AssertBadRequest(client, "/generate/stream", new { prompt = "", maxTokens = 8 }, "prompt is missing or empty");
            await AssertBadRequest(client, "/generate/stream", new { prompt = "The jury said", maxTokens = -3 }, "maxTokens must be at least 1, not -3");
            using (var malformed = await client.PostAsync("/generate", new StringContent("{\"prompt\": 7}", Encoding.UTF8, "application/json")))
            {
                Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
                Assert.Contains("$.prompt", await malformed.Content.ReadAsStringAsync());
            }
            // The whole context is fine (the limit is not off by one), and the service still answers as the library does.
            var fill = await Generate(client, "The jury said", ContextLength - promptTokens);
            Assert.True(fill.Status == HttpStatusCode.OK, fill.Body);
            var again = await Generate(client, requests[3].Prompt, requests[3].MaxTokens);
            Assert.True(again.Status == HttpStatusCode.OK, again.Body);
            using (var body = JsonDocument.Parse(again.Body))
                Assert.Equal(expected[3].Ids, body.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
            Assert.False(service.Process.HasExited, service.Output);
        }
        finally
        {
            service.Stop();
        }
        Assert.Equal(examplesBefore, PackedFolder.Snapshot(Path.Combine(RepositoryPaths.Root, "examples")));
    }

    private static async Task<(HttpStatusCode Status, string Body)> Generate(HttpClient client, string prompt, int maxTokens)
    {
        using var response = await client.PostAsJsonAsync("/generate", new { prompt, maxTokens });
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static async Task<(List<(int Id, string Text)> Tokens, JsonElement Done)> StreamTokens(HttpClient client, string prompt, int maxTokens)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/generate/stream") { Content = JsonContent.Create(new { prompt, maxTokens }) };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var tokens = new List<(int, string)>();
        JsonElement? done = null;
        await using var body = await response.Content.ReadAsStreamAsync();
        await foreach (var item in SseParser.Create(body).EnumerateAsync())
        {
            Assert.Null(done);  // nothing after done
            using var data = JsonDocument.Parse(item.Data);
            if (item.EventType == "token") tokens.Add((data.RootElement.GetProperty("id").GetInt32(), data.RootElement.GetProperty("text").GetString()!));
            else if (item.EventType == "done") done = data.RootElement.Clone();
            else Assert.Fail($"unexpected event '{item.EventType}': {item.Data}");
        }
        Assert.NotNull(done);
        return (tokens, done.Value);
    }

    private static async Task AssertBadRequest(HttpClient client, string path, object body, string problem)
    {
        using var response = await client.PostAsJsonAsync(path, body);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{path} {JsonSerializer.Serialize(body)}: {response.StatusCode} {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var document = JsonDocument.Parse(text);
        Assert.Contains(problem, document.RootElement.GetProperty("detail").GetString());
    }

    // The port is free when this returns; another process could take it before the service does, which is unlikely
    // enough here, and the service then fails to start with a message saying so.
    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    // Polls /health until it answers, and returns its body.
    private static async Task<string> WaitUntilReady(HttpClient client, RunningService service)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            Assert.False(service.Process.HasExited, $"the service exited with {(service.Process.HasExited ? service.Process.ExitCode : 0)}:\n{service.Output}");
            try
            {
                using var response = await client.GetAsync("/health");
                if (response.StatusCode == HttpStatusCode.OK) return await response.Content.ReadAsStringAsync();
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(1), $"the service did not answer in a minute:\n{service.Output}");
            await Task.Delay(200);
        }
    }

    private static RunningService Start(string folder, IEnumerable<string> arguments)
    {
        // The content root is the working folder: the service reads its appsettings.json from its output folder.
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(folder, "GenerationService.dll"));
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        return new RunningService(Process.Start(start)!);
    }

    /// <summary>The service's process and what it printed; <see cref="Stop"/> kills its process tree.</summary>
    private sealed class RunningService : IDisposable
    {
        private readonly StringBuilder _output = new();

        public RunningService(Process process)
        {
            Process = process;
            process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public Process Process { get; }

        public string Output
        {
            get { lock (_output) return _output.ToString(); }
        }

        public void Stop()
        {
            if (!Process.HasExited) Process.Kill(entireProcessTree: true);
            Process.WaitForExit();
        }

        public void Dispose()
        {
            Stop();
            Process.Dispose();
        }
    }
}
