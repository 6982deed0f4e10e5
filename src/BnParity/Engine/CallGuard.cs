namespace BnParity;

/// <summary>
/// The module's concurrency contract, enforced. A call either shares the module (an eval-mode forward that saves
/// nothing for backward: it reads weights and buffers, and runs on its own <c>NormalizationEngine</c>) or needs it exclusively
/// (anything that writes the module: a training forward, a forward that saves for backward, <c>Backward</c>, a
/// setter, a reset, a state-dict load). State: 0 idle, n &gt; 0 shared calls in progress, −1 one exclusive call.
/// A call that cannot enter throws instead of waiting: an overlap is a bug in the caller, and waiting would hide it
/// (and could deadlock a caller that holds the module in a callback).
/// </summary>
internal sealed class CallGuard(string owner)
{
    private int _state;

    /// <summary>Enters as a shared call.</summary>
    /// <exception cref="InvalidOperationException">An exclusive call is in progress.</exception>
    public void EnterShared()
    {
        while (true)
        {
            int state = Volatile.Read(ref _state);
            if (state < 0)
            {
                throw Overlap();
            }

            if (Interlocked.CompareExchange(ref _state, state + 1, state) == state)
            {
                return;
            }
        }
    }

    public void ExitShared() => Interlocked.Decrement(ref _state);

    /// <summary>Turns the caller's shared entry into an exclusive one; on failure the caller has left.</summary>
    /// <exception cref="InvalidOperationException">Another call is in progress.</exception>
    public void UpgradeToExclusive()
    {
        if (Interlocked.CompareExchange(ref _state, -1, 1) != 1)
        {
            ExitShared();
            throw Overlap();
        }
    }

    /// <summary>Enters as the only call.</summary>
    /// <exception cref="InvalidOperationException">Another call is in progress.</exception>
    public void EnterExclusive()
    {
        if (Interlocked.CompareExchange(ref _state, -1, 0) != 0)
        {
            throw Overlap();
        }
    }

    public void ExitExclusive() => Volatile.Write(ref _state, 0);

    private InvalidOperationException Overlap() => new(
        $"{owner} is already in use by another thread. Only eval-mode Forward calls with SaveForBackward = false " +
        "may run concurrently on one module; a training Forward, a Forward that saves for Backward, Backward, and " +
        "changes to the module's settings or state need the module to themselves. Use one module per thread for those.");
}
