using System.Runtime.InteropServices;

namespace SparseOnnx.GraphRewriter.IO;

/// <summary>Hard links: a second name for an existing file, so a work folder can hold a model's weights without copying them.</summary>
public static class FileLinks
{
    /// <summary>
    /// Makes <paramref name="link"/> (which must not exist) a hard link to the file <paramref name="target"/>;
    /// false when the file system cannot (another device, no hard links, no permission), and nothing is created.
    /// </summary>
    public static bool TryHardLink(string target, string link)
    {
        try
        {
            return OperatingSystem.IsWindows() ? CreateHardLink(link, target, IntPtr.Zero) : Link(target, link) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [DllImport("libc", EntryPoint = "link")]
    private static extern int Link([MarshalAs(UnmanagedType.LPUTF8Str)] string existing, [MarshalAs(UnmanagedType.LPUTF8Str)] string newPath);

    [DllImport("kernel32", EntryPoint = "CreateHardLinkW", CharSet = CharSet.Unicode)]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static extern bool CreateHardLink(string newPath, string existing, IntPtr securityAttributes);
}
