using System.Collections.Immutable;

namespace SparseOnnx.GraphRewriter.Ir;

/// <summary>
/// A structural copy of a model (<see cref="Model.Clone"/>): every graph, node, value, attribute and declaration is
/// new, so a pass can rewrite the copy while the original stays as it was; tensor data is shared, not copied (it is
/// immutable: passes replace tensors, they never write into them), so a copy of a 6 GB model with mapped external
/// data costs the graph's size. The copy holds no resource of its own: keep the original undisposed while the copy
/// is used.
/// </summary>
internal static class ModelCloner
{
    public static Model Clone(Model source)
    {
        var main = new Dictionary<Value, Value>();
        var clone = new Model(CloneGraph(source.Graph, main))
        {
            IrVersion = source.IrVersion,
            ProducerName = source.ProducerName,
            ProducerVersion = source.ProducerVersion,
            Domain = source.Domain,
            ModelVersion = source.ModelVersion,
            DocString = source.DocString,
            SourcePath = source.SourcePath,
            ExternalDataPaths = source.ExternalDataPaths.ToArray(),
            Residue = source.Residue?.Clone(),
        };
        foreach (var (domain, version) in source.OpsetImports) clone.OpsetImports.Set(domain, version);
        clone.MetadataProps.AddRange(source.MetadataProps);
        foreach (var function in source.Functions)
        {
            var copy = new Function(function.Domain, function.Name, CloneGraph(function.Body, new Dictionary<Value, Value>()))
            {
                Overload = function.Overload,
                DocString = function.DocString,
            };
            copy.AttributeNames.AddRange(function.AttributeNames);
            copy.AttributeDefaults.AddRange(function.AttributeDefaults.Select(a => CloneAttribute(a, new Dictionary<Value, Value>())));
            foreach (var (domain, version) in function.OpsetImports) copy.OpsetImports.Set(domain, version);
            copy.MetadataProps.AddRange(function.MetadataProps);
            clone.Functions.Add(copy);
        }
        foreach (var info in source.TrainingInfo)
        {
            // Training graphs see the main graph's values (the algorithm reads and updates its initializers).
            var copy = new TrainingInfo
            {
                Initialization = info.Initialization is null ? null : CloneGraph(info.Initialization, new Dictionary<Value, Value>(main)),
                Algorithm = info.Algorithm is null ? null : CloneGraph(info.Algorithm, new Dictionary<Value, Value>(main)),
            };
            copy.InitializationBinding.AddRange(info.InitializationBinding);
            copy.UpdateBinding.AddRange(info.UpdateBinding);
            clone.TrainingInfo.Add(copy);
        }
        return clone;
    }

    /// <summary>
    /// Copies <paramref name="graph"/>; <paramref name="map"/> holds the copies of every value in scope outside it
    /// (a subgraph reads its outer graphs' values), and receives this graph's.
    /// </summary>
    private static Graph CloneGraph(Graph graph, Dictionary<Value, Value> map)
    {
        var copy = new Graph(graph.Name) { DocString = graph.DocString, Residue = graph.Residue?.Clone() };
        copy.MetadataProps.AddRange(graph.MetadataProps);
        foreach (var input in graph.Inputs)
        {
            var value = CloneValue(input);
            copy.Inputs.Add(value);
            map[input] = value;
        }
        foreach (var initializer in graph.Initializers)
        {
            // An input with a default value is both: the copied input gets the tensor.
            var value = map.TryGetValue(initializer, out var declared) && declared.Graph == copy ? declared : CloneValue(initializer);
            copy.Initializers.Add(value, initializer.ConstValue!);
            map[initializer] = value;
        }
        foreach (var sparse in graph.SparseInitializers)
        {
            var value = map.TryGetValue(sparse, out var declared) && declared.Graph == copy ? declared : CloneValue(sparse);
            value.Graph = copy;
            value.SparseConstValue = sparse.SparseConstValue;
            copy.SparseInitializers.Add(value);
            map[sparse] = value;
        }

        // Outputs first, inputs after: a node may read a value produced later in the list (an unsorted graph).
        var nodes = new List<(Node Source, Node Copy)>();
        foreach (var node in graph.Nodes)
        {
            var clone = new Node(node.Domain, node.OpType, [], node.Outputs.Select(o => o.Name), node.Name)
            {
                Overload = node.Overload,
                DocString = node.DocString,
                Residue = node.Residue?.Clone(),
            };
            clone.MetadataProps.AddRange(node.MetadataProps);
            for (int i = 0; i < node.Outputs.Count; i++)
            {
                CopyDeclaration(node.Outputs[i], clone.Outputs[i]);
                map[node.Outputs[i]] = clone.Outputs[i];
            }
            nodes.Add((node, clone));
        }
        foreach (var (source, clone) in nodes)
        {
            foreach (var input in source.Inputs)
                clone.AppendInput(input is null ? null : map.TryGetValue(input, out var mapped) ? mapped
                    : throw new InvalidOperationException($"Node {source} reads '{input.Name}', which is not in scope; the model cannot be copied."));
            foreach (var attribute in source.Attributes) clone.Attributes.Set(CloneAttribute(attribute, map));
            copy.Nodes.Add(clone);
        }

        foreach (var output in graph.Outputs) copy.Outputs.Add(map[output]);
        foreach (var (outer, declaration) in graph.OuterOutputDeclarations) copy.OuterOutputDeclarations[map[outer]] = CloneValue(declaration);
        foreach (var declared in graph.ValueInfo)
        {
            // value_info may name a value nothing defines (kept detached so it round-trips).
            if (!map.TryGetValue(declared, out var value))
            {
                value = CloneValue(declared);
                value.Graph = copy;
            }
            copy.ValueInfo.Add(value);
        }
        copy.QuantizationAnnotations.AddRange(graph.QuantizationAnnotations);
        return copy;
    }

    private static OnnxAttribute CloneAttribute(OnnxAttribute attribute, Dictionary<Value, Value> map)
    {
        if (!attribute.Subgraphs.Any()) return attribute;  // immutable apart from its subgraphs
        object value = attribute.Kind == AttributeKind.Graph
            ? CloneGraph(attribute.AsGraph(), new Dictionary<Value, Value>(map))
            : attribute.Subgraphs.Select(g => CloneGraph(g, new Dictionary<Value, Value>(map))).ToImmutableArray();
        var copy = OnnxAttribute.Create(attribute.Name, attribute.Kind, value);
        copy.DocString = attribute.DocString;
        copy.Residue = attribute.Residue?.Clone();
        return copy;
    }

    private static Value CloneValue(Value source)
    {
        var value = new Value(source.Name);
        CopyDeclaration(source, value);
        return value;
    }

    private static void CopyDeclaration(Value source, Value target)
    {
        target.Type = source.Type;
        target.DocString = source.DocString;
        target.MetadataProps.AddRange(source.MetadataProps);
    }
}
