// Loads the built Rl library (and its packages) into F# Interactive for scripts and notebooks.
// Load prepare.fsx on the line before this file (`#load "prepare.fsx"`, then `#load "load.fsx"`):
// it builds the library when it is missing or older than src/ (a fresh clone). It must be the
// script's own #load: F# Interactive resolves a loaded file's #r lines before running any of it.
#r "../src/bin/Release/net10.0/TorchSharp.dll"
#r "../src/bin/Release/net10.0/Plotly.NET.dll"
#r "../src/bin/Release/net10.0/DynamicObj.dll"
#r "../src/bin/Release/net10.0/Giraffe.ViewEngine.dll"
#r "../src/bin/Release/net10.0/Newtonsoft.Json.dll"
#r "../src/bin/Release/net10.0/YamlDotNet.dll"
#r "../src/bin/Release/net10.0/Spectre.Console.dll"
#r "../src/bin/Release/net10.0/Spectre.Console.Ansi.dll"
#r "../src/bin/Release/net10.0/Google.Protobuf.dll"
#r "../src/bin/Release/net10.0/OnnxSharp.dll"
#r "../src/bin/Release/net10.0/Razorvine.Pickle.dll"
#r "../src/bin/Release/net10.0/TqdmSharp.dll"
#r "../src/bin/Release/net10.0/TorchSharp.PyBridge.dll"
#r "../src/bin/Release/net10.0/SkiaSharp.dll"
#r "../src/bin/Release/net10.0/Rl.dll"

// Load libtorch now (making the native repair where the host needs it); a problem it cannot fix
// (say, missing repair tools without root) stops with its one-line message, not a stack trace.
try
    Rl.Native.init ()
with e ->
    eprintfn "%s" e.Message
    exit 1
