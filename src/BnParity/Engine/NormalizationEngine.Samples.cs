namespace BnParity;

/// <content>
/// The samples level: a view of several independent (N, C, S) blocks (channels-last instances of an InstanceNorm or a
/// GroupNorm). With one worker, or samples that do not share out evenly, the blocks run one after the other, each
/// with every worker; otherwise each worker takes a contiguous range of whole samples and runs them one after the
/// other on one thread (one fork/join per call instead of several per sample, and a sample's passes stay in the
/// cache of the core that read it). A sample's results do not depend on the thread count it ran with, so neither
/// arrangement changes a bit.
/// </content>
internal sealed unsafe partial class NormalizationEngine<T>
{
    /// <summary>The engines of the sample workers (one per worker, made on first use, each run with one thread).</summary>
    private NormalizationEngine<T>[] _sampleEngines = [];

    // The samples job the workers read (set before the fork).
    private ReductionView _samplesView;
    private bool _samplesBatch;
    private double[] _samplesMean = [];
    private double[] _samplesInvstd = [];
    private double[] _samplesVarSum = [];
    private double[] _samplesGradWeight = [];
    private double[] _samplesGradBias = [];

    private int SampleWorkers(in ReductionView view) => PathSelection.SampleWorkers(view.Samples, view.SampleLength, _maxThreads, _options);

    /// <summary>
    /// Forward over every sample of <paramref name="view"/>: sample i's per-channel statistics go to
    /// <paramref name="mean"/>, <paramref name="invstd"/> and <paramref name="varSum"/> at i·C. <see cref="Weight"/>,
    /// <see cref="Bias"/> and (fixed statistics) <see cref="Mean"/>, <see cref="Invstd"/> are set as for
    /// <see cref="RunForward"/>.
    /// </summary>
    public void RunForwardSamples(T* x, T* y, T* save, in ReductionView view, bool batch, double[] mean, double[] invstd, double[] varSum)
    {
        int channels = view.Channels;
        long sampleLength = view.SampleLength;
        int workers = SampleWorkers(view);
        _outputElements = sampleLength * view.Samples;
        if (workers == 1)
        {
            for (int i = 0; i < view.Samples; i++)
            {
                long o = i * sampleLength;
                RunForward(x + o, y + o, save is null ? null : save + o, view.Batch, channels, view.Spatial, view.ChannelsPerSet, batch);
                Array.Copy(Mean, 0, mean, i * channels, channels);
                Array.Copy(Invstd, 0, invstd, i * channels, channels);
                Array.Copy(VarSum, 0, varSum, i * channels, channels);
            }

            return;
        }

        PrepareSampleEngines(workers, copyStatistics: !batch);
        _samplesView = view;
        _samplesBatch = batch;
        _samplesMean = mean;
        _samplesInvstd = invstd;
        _samplesVarSum = varSum;
        RunSamplesPhase(CallKind.ForwardBatch, x, y, null, save, workers);
    }

    /// <summary>
    /// Backward over every sample of <paramref name="view"/>: sample i's saved statistics are read from
    /// <paramref name="mean"/> and <paramref name="invstd"/> at i·C, and its per-channel parameter gradients written
    /// to <paramref name="gradWeight"/> and <paramref name="gradBias"/> at i·C (the caller folds them in sample
    /// order). <see cref="Weight"/> is set as for <see cref="RunBackward"/>.
    /// </summary>
    public void RunBackwardSamples(T* x, T* dy, T* dx, in ReductionView view, bool batch, double[] mean, double[] invstd, double[] gradWeight, double[] gradBias)
    {
        int channels = view.Channels;
        long sampleLength = view.SampleLength;
        int workers = SampleWorkers(view);
        _outputElements = sampleLength * view.Samples;
        if (workers == 1)
        {
            for (int i = 0; i < view.Samples; i++)
            {
                long o = i * sampleLength;
                Array.Copy(mean, i * channels, Mean, 0, channels);
                Array.Copy(invstd, i * channels, Invstd, 0, channels);
                RunBackward(x + o, dy + o, dx + o, view.Batch, channels, view.Spatial, view.ChannelsPerSet, batch);
                Array.Copy(GradWeight, 0, gradWeight, i * channels, channels);
                Array.Copy(GradBias, 0, gradBias, i * channels, channels);
            }

            return;
        }

        PrepareSampleEngines(workers, copyStatistics: false);
        _samplesView = view;
        _samplesBatch = batch;
        _samplesMean = mean;
        _samplesInvstd = invstd;
        _samplesGradWeight = gradWeight;
        _samplesGradBias = gradBias;
        RunSamplesPhase(CallKind.BackwardBatch, x, dx, dy, null, workers);
    }

    /// <summary>Makes (once) and readies the workers' engines: this call's settings with one thread, the parameters,
    /// and with fixed statistics the per-channel mean and invstd.</summary>
    private void PrepareSampleEngines(int workers, bool copyStatistics)
    {
        if (_sampleEngines.Length < workers)
        {
            var engines = new NormalizationEngine<T>[workers];
            for (int w = 0; w < workers; w++)
            {
                engines[w] = w < _sampleEngines.Length ? _sampleEngines[w] : new NormalizationEngine<T>(Capacity);
            }

            _sampleEngines = engines;
        }

        for (int w = 0; w < workers; w++)
        {
            NormalizationEngine<T> engine = _sampleEngines[w];
            engine.Begin(_eps, 1, _options);
            engine._outputElements = _outputElements;
            Array.Copy(Weight, engine.Weight, Capacity);
            Array.Copy(Bias, engine.Bias, Capacity);
            if (copyStatistics)
            {
                Array.Copy(Mean, engine.Mean, Capacity);
                Array.Copy(Invstd, engine.Invstd, Capacity);
            }
        }
    }

    private void RunSamplesPhase(CallKind call, T* x, T* output, T* dy, T* save, int workers)
    {
        _call = call;
        _phase = Phase.Samples;
        _pX = (nint)x;
        _pOut = (nint)output;
        _pDy = (nint)dy;
        _pSave = (nint)save;
        try
        {
            RunPhase(workers);
        }
        finally
        {
            _pX = _pOut = _pDy = _pSave = 0;
            _samplesMean = _samplesInvstd = _samplesVarSum = _samplesGradWeight = _samplesGradBias = [];
        }
    }

    /// <summary>Chunk <paramref name="chunk"/> of a samples phase: its range of samples, one after the other, on its
    /// own engine.</summary>
    private void RunSampleRange(int chunk, int chunks)
    {
        ReductionView view = _samplesView;
        NormalizationEngine<T> engine = _sampleEngines[chunk];
        int channels = view.Channels;
        long sampleLength = view.SampleLength;
        T* x = (T*)_pX, output = (T*)_pOut, dy = (T*)_pDy, save = (T*)_pSave;
        for (int i = (int)((long)chunk * view.Samples / chunks), end = (int)((long)(chunk + 1) * view.Samples / chunks); i < end; i++)
        {
            long o = i * sampleLength;
            if (_call == CallKind.ForwardBatch)
            {
                engine.RunForward(x + o, output + o, save is null ? null : save + o, view.Batch, channels, view.Spatial, view.ChannelsPerSet, _samplesBatch);
                Array.Copy(engine.Mean, 0, _samplesMean, i * channels, channels);
                Array.Copy(engine.Invstd, 0, _samplesInvstd, i * channels, channels);
                Array.Copy(engine.VarSum, 0, _samplesVarSum, i * channels, channels);
            }
            else
            {
                Array.Copy(_samplesMean, i * channels, engine.Mean, 0, channels);
                Array.Copy(_samplesInvstd, i * channels, engine.Invstd, 0, channels);
                engine.RunBackward(x + o, dy + o, output + o, view.Batch, channels, view.Spatial, view.ChannelsPerSet, _samplesBatch);
                Array.Copy(engine.GradWeight, 0, _samplesGradWeight, i * channels, channels);
                Array.Copy(engine.GradBias, 0, _samplesGradBias, i * channels, channels);
            }
        }
    }
}
