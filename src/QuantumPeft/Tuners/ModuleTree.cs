using System.Collections;
using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace QuantumPeft.Tuners;

/// <summary>Finding and replacing sub-modules of a TorchSharp module tree by dotted path.</summary>
/// <remarks>
/// A TorchSharp module's forward calls its C# fields, so replacing a child means setting the field that holds it
/// (found by reference on the parent's fields, including auto-property backing fields) and registering the new
/// child under the same name (register_module overwrites the entry in place, keeping the order). ModuleList,
/// ModuleDict and Sequential children are replaced in their list as well. A field whose declared type cannot hold
/// the new module (e.g. typed <c>Linear</c>) is an error that says how to declare it.
/// </remarks>
public static class ModuleTree
{
    /// <summary>All sub-modules by dotted path (the root itself excluded).</summary>
    public static Dictionary<string, nn.Module> Modules(nn.Module root) =>
        root.named_modules().Where(m => m.name.Length > 0).ToDictionary(m => m.name, m => m.module);

    /// <summary>
    /// Every parameter of <paramref name="root"/> by name, each tensor once (as PyTorch's <c>named_parameters()</c>):
    /// a tied head is the embedding's own tensor, so it is listed under its first name only.
    /// </summary>
    /// <remarks>
    /// TorchSharp lists a tied tensor under both names, as two managed wrappers of one native tensor (they share data and
    /// gradient), so reference equality does not find the tie: the data address, offset, shape and type do (float32, float64,
    /// float16 and integer tensors; a bfloat16 tie is not found). An optimiser given both would step the tensor twice a step.
    /// </remarks>
    public static List<(string Name, Parameter Parameter)> DistinctParameters(nn.Module root)
    {
        var seen = new HashSet<(long, long, string, ScalarType)>();
        return root.named_parameters().Where(p => seen.Add(Identity(p.parameter))).Select(p => (p.name, p.parameter)).ToList();
    }

    // Where a tensor's numbers live. Storage<T> gives the address only when T is the tensor's own element type (another T
    // copies); bfloat16 has no such T in TorchSharp, so it falls back to the wrapper (no tie found, as before).
    static (long Address, long Offset, string Shape, ScalarType Type) Identity(Tensor t)
    {
        var shape = string.Join(",", t.shape);
        long address = t.dtype switch
        {
            ScalarType.Float32 => (long)t.storage<float>().data_ptr(),
            ScalarType.Float64 => (long)t.storage<double>().data_ptr(),
            ScalarType.Float16 => (long)t.storage<Half>().data_ptr(),
            ScalarType.Int64 => (long)t.storage<long>().data_ptr(),
            ScalarType.Int32 => (long)t.storage<int>().data_ptr(),
            _ => (long)t.Handle,
        };
        return (address, t.storage_offset(), shape, t.dtype);
    }

    /// <summary>How many numbers <paramref name="root"/> holds, a shared (tied) tensor counted once, as transformers' <c>num_parameters()</c>.</summary>
    public static long CountParameters(nn.Module root, bool trainableOnly = false) =>
        DistinctParameters(root).Where(p => !trainableOnly || p.Parameter.requires_grad).Sum(p => p.Parameter.numel());

    /// <summary>The module at <paramref name="path"/> ("" is the root).</summary>
    public static nn.Module Get(nn.Module root, string path)
    {
        if (path.Length == 0) return root;
        var current = root;
        foreach (var part in path.Split('.'))
        {
            var next = current.named_children().FirstOrDefault(c => c.name == part).module;
            current = next ?? throw new KeyNotFoundException($"No module at '{path}' (no child '{part}').");
        }
        return current;
    }

    /// <summary>Replaces the module at <paramref name="path"/> by <paramref name="replacement"/>.</summary>
    public static void Replace(nn.Module root, string path, nn.Module replacement)
    {
        var split = path.LastIndexOf('.');
        var parentPath = split < 0 ? "" : path[..split];
        var childName = split < 0 ? path : path[(split + 1)..];
        var parent = Get(root, parentPath);
        var old = Get(parent, childName);

        if (parent is Sequential seq) ReplaceInSequential(seq, childName, old, replacement, path);
        else if (TryReplaceInCollection(parent, old, replacement, path)) { }
        else ReplaceField(parent, old, replacement, path);
        Register(parent, childName, replacement);
    }

    // register_module refuses a name that exists; removing and re-adding would move the child to the end of the
    // state dict, so the registered entry is overwritten in place when the container allows it.
    private static void Register(nn.Module parent, string childName, nn.Module replacement)
    {
        var field = typeof(nn.Module).GetField("_internal_submodules", BindingFlags.Instance | BindingFlags.NonPublic);
        var dict = field?.GetValue(parent);
        var indexer = dict?.GetType().GetProperty("Item", [typeof(string)]);
        if (indexer is not null)
        {
            try { indexer.SetValue(dict, replacement, [childName]); } catch (TargetInvocationException) { }
            if (parent.named_children().Any(c => c.name == childName && ReferenceEquals(c.module, replacement))) return;
        }
        parent.register_module(childName, null!);
        parent.register_module(childName, replacement);
    }

    private static void ReplaceInSequential(Sequential seq, string childName, nn.Module old, nn.Module replacement, string path)
    {
        const BindingFlags flags = BindingFlags.Instance | BindingFlags.NonPublic;
        var modules = typeof(Sequential).GetField("_modules", flags)?.GetValue(seq) as IList;
        if (modules is null) throw new NotSupportedException($"Cannot replace '{path}': this TorchSharp version's Sequential layout is unknown.");
        var index = -1;
        for (var i = 0; i < modules.Count; i++) if (ReferenceEquals(modules[i], old)) index = i;
        if (index < 0) throw new InvalidOperationException($"Cannot find '{path}' inside its Sequential.");
        if (replacement is not nn.IModule<Tensor, Tensor>)
            throw new ArgumentException($"'{path}' sits in a Sequential, which needs a Module<Tensor, Tensor>; {replacement.GetType().Name} is not one.");
        modules[index] = replacement;
    }

    private static bool TryReplaceInCollection(nn.Module parent, nn.Module old, nn.Module replacement, string path)
    {
        var listType = parent.GetType().GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IList<>)
            && typeof(nn.Module).IsAssignableFrom(i.GetGenericArguments()[0]));
        if (listType is not null)
        {
            // ModuleList<T> implements only the generic IList<T>: go through that interface.
            var element = listType.GetGenericArguments()[0];
            var count = (int)typeof(ICollection<>).MakeGenericType(element).GetProperty("Count")!.GetValue(parent)!;
            var item = listType.GetProperty("Item")!;
            var index = -1;
            for (var i = 0; i < count; i++) if (ReferenceEquals(item.GetValue(parent, [i]), old)) index = i;
            if (index < 0) return false;
            if (!element.IsInstanceOfType(replacement))
                throw new ArgumentException($"'{path}' sits in a list of {element.Name}, which cannot hold a {replacement.GetType().Name}; declare the list as ModuleList<Module<Tensor, Tensor>>.");
            item.SetValue(parent, replacement, [index]);
            return true;
        }
        var dictType = parent.GetType().GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IDictionary<,>)
            && i.GetGenericArguments()[0] == typeof(string) && typeof(nn.Module).IsAssignableFrom(i.GetGenericArguments()[1]));
        if (dictType is not null)
        {
            var element = dictType.GetGenericArguments()[1];
            var keyOf = parent.named_children().First(c => ReferenceEquals(c.module, old)).name;
            if (!element.IsInstanceOfType(replacement))
                throw new ArgumentException($"'{path}' sits in a dictionary of {element.Name}, which cannot hold a {replacement.GetType().Name}.");
            dictType.GetProperty("Item")!.SetValue(parent, replacement, [keyOf]);
            return true;
        }
        return false;
    }

    private static void ReplaceField(nn.Module parent, nn.Module old, nn.Module replacement, string path)
    {
        var fields = new List<FieldInfo>();
        for (var t = parent.GetType(); t is not null && t != typeof(nn.Module); t = t.BaseType)
            fields.AddRange(t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)
                .Where(f => ReferenceEquals(f.GetValue(parent), old)));
        if (fields.Count == 0)
            throw new InvalidOperationException(
                $"Cannot replace '{path}': no field of {parent.GetType().Name} holds it, so forward would keep calling the old module.");
        foreach (var f in fields)
        {
            if (!f.FieldType.IsInstanceOfType(replacement))
                throw new ArgumentException(
                    $"Cannot put an adapter on '{path}': it is held in field '{parent.GetType().Name}.{Display(f)}' of type {f.FieldType.Name}, " +
                    $"which cannot hold a {replacement.GetType().Name}. Declare the field as Module<Tensor, Tensor> (see COMMON.md), or exclude the layer.");
            f.SetValue(parent, replacement);
        }
    }

    private static string Display(FieldInfo f) =>
        f.Name.StartsWith('<') && f.Name.Contains(">k__BackingField") ? f.Name[1..f.Name.IndexOf('>')] : f.Name;

    /// <summary>Every Linear (or GPT-2 Conv1D) layer by path, in registration order.</summary>
    public static List<(string Path, nn.Module Layer)> Linears(nn.Module root) =>
        root.named_modules().Where(m => LinearLayers.IsLinear(m.module) && m.name.Length > 0).Select(m => (m.name, m.module)).ToList();
}
