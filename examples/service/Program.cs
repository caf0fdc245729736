// A text-generation service over a model SparseOnnx sparsified: POST /generate answers with the whole continuation,
// POST /generate/stream sends each token as a server-sent event as soon as it is generated. One model serves every
// request (Generator.cs says why that is safe and how requests share the cores). How to run it: README.md.
using GenerationService;
using Microsoft.AspNetCore.Http.HttpResults;
using SparseOnnx.Runtime.Inference;
using SparseOnnx.Runtime.Tokenization;

var builder = WebApplication.CreateBuilder(args);
// Short forms of the model's settings, beside the long ones (--Model:Path=..., Model__Path=... in the environment).
builder.Configuration.AddCommandLine(args, new Dictionary<string, string>
{
    ["--model"] = "Model:Path",
    ["--tokenizer"] = "Model:Tokenizer",
    ["--context-length"] = "Model:ContextLength",
});
builder.Services.AddProblemDetails();  // errors of the framework (404, 405, 500) answer as problem details too

// The model is loaded before the server listens: a service that answers is ready, and one with a bad model path
// or model stops here with the reason instead of failing its first request.
Generator generator;
try
{
    generator = Generator.Open(builder.Configuration.GetSection("Model").Get<ModelSettings>() ?? new ModelSettings(),
        builder.Configuration.GetSection("Generation").Get<GenerationSettings>() ?? new GenerationSettings());
}
// InvalidOperationException: a setting that does not convert (--context-length abc).
catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or TokenizerLoadException or UnsupportedModelException
                              or Microsoft.ML.OnnxRuntime.OnnxRuntimeException or System.Text.Json.JsonException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
using var _ = generator;
builder.Services.AddSingleton(generator);

var app = builder.Build();
app.UseExceptionHandler();
app.UseStatusCodePages();

app.MapGet("/health", (Generator g) => TypedResults.Ok(new
{
    status = "ready",
    model = g.ModelPath,
    device = g.Device.ToString().ToLowerInvariant(),
    contextLength = g.ContextLength,
    maxConcurrent = g.MaxConcurrent,
}));

app.MapPost("/generate", async Task<Results<Ok<GenerateResponse>, ProblemHttpResult>> (HttpRequest http, Generator g, CancellationToken aborted) =>
{
    var (request, problem) = await Checked(http, g, aborted);
    if (request is null) return BadRequest(problem!);
    return TypedResults.Ok(await g.GenerateAsync(request, aborted));
});

app.MapPost("/generate/stream", async Task<Results<ServerSentEventsResult<object>, ProblemHttpResult>> (HttpRequest http, Generator g, CancellationToken aborted) =>
{
    // Checked before the first event, so a bad request gets its 400 rather than a stream that ends at once.
    var (request, problem) = await Checked(http, g, aborted);
    if (request is null) return BadRequest(problem!);
    return TypedResults.ServerSentEvents(g.StreamAsync(request, aborted));
});

app.Logger.LogInformation("Serving {Model} on {Device}: context {Context} tokens, {Concurrent} generations at once",
    generator.ModelPath, generator.Device, generator.ContextLength, generator.MaxConcurrent);
app.Run();
return 0;

// The body is read here rather than bound by the framework, whose 400 for JSON it cannot read says nothing of what
// was wrong outside Development; this one names it (the field and position System.Text.Json reports).
static async Task<(CheckedRequest? Request, string? Problem)> Checked(HttpRequest http, Generator generator, CancellationToken aborted)
{
    if (!http.HasJsonContentType())
        return (null, "The body must be JSON (Content-Type: application/json): {\"prompt\": \"...\", \"maxTokens\": N}.");
    try
    {
        return generator.Check(await http.ReadFromJsonAsync<GenerateRequest>(aborted));
    }
    catch (System.Text.Json.JsonException e)
    {
        return (null, $"The body is not a generation request {{\"prompt\": \"...\", \"maxTokens\": N}}: {e.Message}");
    }
}

static ProblemHttpResult BadRequest(string problem) =>
    TypedResults.Problem(title: "The generation request is invalid", detail: problem, statusCode: StatusCodes.Status400BadRequest);
